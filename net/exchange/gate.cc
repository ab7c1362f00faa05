#include "net/exchange/gate.h"

#include "net/exchange/policy_gate.h"

namespace mcpgate::net {
namespace {

class allow_all_ticket final : public gate_ticket {
 public:
  void completed(int, bool) override {}
};

}  // namespace

std::unique_ptr<gate_ticket> allow_all_gate::new_ticket() {
  return std::make_unique<allow_all_ticket>();
}

bool allow_all_gate::owns(const gate_ticket& ticket) const {
  return dynamic_cast<const allow_all_ticket*>(&ticket) != nullptr;
}

std::unique_ptr<gate> make_gate(const std::shared_ptr<const gate_config>& config, unsigned) {
  if (auto* p = dynamic_cast<const policy_gate_config*>(config.get()))
    return std::make_unique<policy_gate>(p->access);
  return std::make_unique<allow_all_gate>();
}

}  // namespace mcpgate::net
