# Project-wide warning and sanitizer flags, applied through an interface
# target so third-party code is not compiled with -Werror.
add_library(tango_flags INTERFACE)
target_compile_options(tango_flags INTERFACE -Wall -Wextra -Werror -Wno-missing-field-initializers)
if(TANGO_SANITIZE)
  target_compile_options(tango_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(tango_flags INTERFACE -fsanitize=address,undefined)
endif()
