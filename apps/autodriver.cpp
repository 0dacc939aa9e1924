// The autodriver runs one grading job inside a VM, container or sandbox; all
// of its logic lives in src/autodriver so the tests can use it directly.
#include "autodriver/Autodriver.hpp"

int main(int argc, char** argv) { return tango::autodriver::main(argc, argv); }
