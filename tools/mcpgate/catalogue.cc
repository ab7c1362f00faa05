#include "tools/mcpgate/catalogue.h"

#include <cstdio>

namespace mcpgate::tools {

int catalogue_main(const std::vector<std::string>&) {
  std::fprintf(stderr, "mcpgate catalogue: not implemented yet\n");
  return 2;
}

}  // namespace mcpgate::tools
