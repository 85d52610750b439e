/*
 * fuzz_config.c: libFuzzer harness for the configuration parser: any text
 * either parses into a config that is freed cleanly, or yields a message
 * for every problem, each line starting with the file name.
 * Built by CMake with -DSOCK_FUZZ=ON (clang), as tools/fuzz does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *errors = NULL;
    struct config *c;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    c = config_parse_string(text, "f.conf", &errors);
    if (c == NULL && errors != NULL) {
        for (char *l = errors; *l; l = strchr(l, '\n') + 1) {
            if (strncmp(l, "f.conf", 6) != 0)
                abort();
            if (strchr(l, '\n') == NULL)
                abort();
        }
    }
    if (c != NULL && errors != NULL)
        abort();
    config_free(c);
    free(errors);
    free(text);
    return 0;
}
