// tango-cli: Tango's command-line client (tango-cli.py's flags), see src/tango/cli/.
#include <iostream>
#include <variant>

#include "tango/cli/Commands.hpp"
#include "tango/cli/Options.hpp"

int main(int argc, char** argv) {
  auto parsed = tango::cli::parseOptions(argc, argv);
  if (auto* rc = std::get_if<int>(&parsed)) return *rc;
  return tango::cli::runAction(std::get<tango::cli::Options>(parsed), std::cout, std::cerr);
}
