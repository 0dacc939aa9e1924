# Project-wide warning and sanitizer flags, applied through an interface
# target so third-party code is not compiled with -Werror.
add_library(tango_flags INTERFACE)
target_compile_options(tango_flags INTERFACE -Wall -Wextra -Werror -Wno-missing-field-initializers)
if(TANGO_SANITIZE)
  # GCC 12 reports false -Wmaybe-uninitialized inside libstdc++ (std::regex,
  # std::optional) when instrumented; the plain build keeps the warning.
  target_compile_options(tango_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined -Wno-maybe-uninitialized)
  target_link_options(tango_flags INTERFACE -fsanitize=address,undefined)
endif()
