#pragma once

#include <memory>
#include <string>
#include <vector>

#include "net/exchange/gate.h"
#include "policy/limits.h"
#include "tools/mcpgate/config.h"

namespace mcpgate::tools {

// The gate configuration the settings ask for: the policy gate when a policy, identities or
// grants are configured, otherwise allow-all. Throws with the file, key path and value of the
// first error.
// Metric labels: tool and grant names the policy knows; `previous` (on reload) keeps the ids
// already handed out.
std::shared_ptr<const net::gate_config> load_gate(const gateway_settings& settings,
                                                  policy::counter_store& counters,
                                                  const net::metric_labels* previous = nullptr);

// What GET /admin/policy shows: each grant's policy as `mcpgate check` describes it, and a
// version hash over the policy files' bytes.
std::string policy_report(const net::gate_config& gate);

// Whether callers must present a key (identities are configured).
bool authenticates(const net::gate_config& gate);
// Whether a policy holds calls for a human's approval (approve_if).
bool holds_for_approval(const net::gate_config& gate);

// One line for the start-up banner: which identities and grants are in force, or that every
// call is allowed.
std::string describe_gate(const net::gate_config& gate);

// `mcpgate check FILE... [--upstream URL | -- COMMAND ARGS...]`: validates each file (a policy
// document, or a gateway config with the policies and pins it names) and prints per tool what
// applies; with a server, warns of every tool a policy names that the server does not list.
// Returns 0, 1 on any invalid file, 2 on a usage error, 3 when there were such warnings.
int check_files(const std::vector<std::string>& args);

}  // namespace mcpgate::tools
