#pragma once

#include <string>
#include <vector>

namespace mcpgate::tools {

// `mcpgate catalogue ...` (args after the word "catalogue"): connects to an MCP server as a
// client, classifies its tools and prints the summary, JSON, or a starter policy. Returns the
// process exit code.
int catalogue_main(const std::vector<std::string>& args);

}  // namespace mcpgate::tools
