#pragma once

// Pinned tool definitions on the command line and at load: `mcpgate catalogue --pin`,
// `mcpgate pins diff|accept`, and the config's "pins" key (policy/tool_pins.h holds the file
// format and the enforcement).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/tool_pins.h"
#include "tools/mcpgate/config.h"
#include "tools/mcpgate/mcp_client.h"

namespace mcpgate::tools {

// The pins of what a server listed, each with its catalogue class.
policy::pins_file::server pins_of(const server_tools& listed);

// Sets `server`'s pins in the file at `path` to what `listed` shows, keeping the other
// servers'; creates the file when it is missing. Returns the error.
std::optional<std::string> write_pins(const std::string& path, const std::string& server,
                                      const server_tools& listed);

// A readable account of what changed from `pinned` to `now`: per tool "changed", "added" or
// "removed", with a line diff of the pretty-printed definitions. `changes` counts the tools.
std::string diff_pins(const policy::pins_file::server& pinned, const policy::pins_file::server& now,
                      size_t* changes);

// The pins of every upstream whose config has "pins", for the gate. With take_missing (the
// gateway starting or reloading, not `mcpgate check`), a "tofu:" file that lacks the server's
// pins gets them from the server now (blocking; control plane). Throws std::runtime_error
// naming the config key and the file.
std::vector<std::shared_ptr<const policy::server_pins>> load_pins(const gateway_settings& s,
                                                                  policy::pin_counts_store& counts,
                                                                  bool take_missing);

// `mcpgate pins diff|accept FILE ...` (args after the word "pins"). Returns the exit code:
// diff 0 when nothing changed, 1 when something did, 2 on an error; accept 0 or 2.
int pins_main(const std::vector<std::string>& args);

}  // namespace mcpgate::tools
