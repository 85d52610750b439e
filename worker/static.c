/*
 * static.c: see static.h. Files are read whole into the response; they
 * are small pages, not a file server.
 */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ws_handshake.h"

#define STATIC_MAX_FILE (1024 * 1024)

static const char *
content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        { ".html", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".ico", "image/x-icon" },
        { ".txt", "text/plain; charset=utf-8" },
    };
    const char *dot = strrchr(name, '.');

    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]);
         i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Segments of [A-Za-z0-9._-], none starting with '.', no empty ones. */
static bool
name_is_safe(const char *rel)
{
    bool seg_start = true;

    for (const char *p = rel; *p; p++) {
        char ch = *p;

        if (ch == '/') {
            if (seg_start)
                return false;
            seg_start = true;
            continue;
        }
        if (seg_start && ch == '.')
            return false;
        seg_start = false;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == '-'))
            return false;
    }
    return !seg_start || *rel == '\0';
}

static char *
read_file(const char *path, size_t *len, int *status)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    char *buf;

    *status = 404;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > STATIC_MAX_FILE) {
        close(fd);
        return NULL;
    }
    buf = malloc((size_t)st.st_size + 1);
    *status = 500;
    if (buf == NULL || read(fd, buf, (size_t)st.st_size) != st.st_size) {
        free(buf);
        close(fd);
        return NULL;
    }
    close(fd);
    *len = (size_t)st.st_size;
    *status = 200;
    return buf;
}

char *
static_response(const char *root, const char *rel, const char *method,
                size_t *len, int *status)
{
    char path[4096], *body = NULL, *resp;
    size_t blen = 0;
    int n;
    bool head = strcmp(method, "HEAD") == 0;

    if (!head && strcmp(method, "GET") != 0) {
        *status = 405;
        return ws_response_error(405, NULL, len);
    }
    if (*rel == '\0')
        rel = "index.html";
    *status = 404;
    if (name_is_safe(rel) &&
        snprintf(path, sizeof(path), "%s/%s", root, rel) < (int)sizeof(path))
        body = read_file(path, &blen, status);
    if (body == NULL)
        return ws_response_error(*status, NULL, len);
    resp = malloc(blen + 256);
    if (resp == NULL) {
        free(body);
        return NULL;
    }
    n = snprintf(resp, 256, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nCache-Control: no-cache\r\n"
                 "X-Content-Type-Options: nosniff\r\n"
                 "Connection: close\r\n\r\n", content_type(rel), blen);
    if (!head)
        memcpy(resp + n, body, blen);
    *len = (size_t)n + (head ? 0 : blen);
    free(body);
    return resp;
}
