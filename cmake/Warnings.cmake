# Project-wide warning and sanitizer flags, applied through an interface
# target so third-party code is not compiled with -Werror.
add_library(tango_flags INTERFACE)
# -Wno-restrict: GCC 12 at -O2/-O3 reports a false -Wrestrict inside
# std::string's operator+ (GCC bug 105329); the warning is off until GCC 13.
set(TANGO_WARNINGS -Wall -Wextra -Werror -Wno-missing-field-initializers -Wno-restrict)
target_compile_options(tango_flags INTERFACE ${TANGO_WARNINGS})
if(TANGO_SANITIZE)
  # GCC 12 reports false -Wmaybe-uninitialized inside libstdc++ (std::regex,
  # std::optional) when instrumented; the plain build keeps the warning.
  target_compile_options(tango_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined -Wno-maybe-uninitialized)
  target_link_options(tango_flags INTERFACE -fsanitize=address,undefined)
endif()
