#define _GNU_SOURCE
#include "ccl_shims.h"

#include <dlfcn.h>
#include <link.h>

// dlinfo is a GNU extension, hidden from Swift without _GNU_SOURCE.

const char *ccl_dl_loaded_path(void *handle) {
    struct link_map *map = 0;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == 0) return 0;
    return map->l_name;
}
