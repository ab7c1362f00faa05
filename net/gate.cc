#include "net/gate.h"

namespace mcpgate::net {

std::unique_ptr<gate> make_gate(const std::shared_ptr<const gate_config>&, unsigned) {
  return std::make_unique<allow_all_gate>();
}

}  // namespace mcpgate::net
