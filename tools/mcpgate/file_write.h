#pragma once

// Writing the files the command-line tools produce (starter policies, pins, the embedded
// default's files): whole or not at all.

#include <optional>
#include <string>

namespace mcpgate::tools {

// Writes through a temporary file in the same folder and a rename, so a reader never sees a
// half-written file. Returns the error ("<what>: cannot write <path>: <errno text>").
std::optional<std::string> write_file_atomically(const std::string& path, const std::string& text,
                                                 const std::string& what);

}  // namespace mcpgate::tools
