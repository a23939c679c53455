# Warning flags for every target of the project.
add_compile_options(
    -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wvla -Wpointer-arith -Wcast-qual
)
if(MXPROBE_WERROR)
    add_compile_options(-Werror)
endif()
add_compile_definitions(_POSIX_C_SOURCE=200809L)
