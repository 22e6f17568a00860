// The one translation unit that compiles stb's image writer and resizer (Debian's libstb-dev ships the
// headers; a header's implementation is compiled where its *_IMPLEMENTATION macro is defined, exactly once).
// Compiled without the project's warning flags (src/export/CMakeLists.txt): third-party code.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image_resize.h>
