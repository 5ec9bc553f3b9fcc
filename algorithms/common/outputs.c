/* outputs.c: provenance attributes and the CSV-or-HDF5 rule of the
 * programs' outputs (see outputs.h). Main thread only. */
#include "outputs.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The file of "file.h5:/dataset" (the part before the last ":/"), as the
 * HDF5 layer splits it. */
static void file_of(const char *spec, char *file, size_t size)
{
    const char *cut = NULL;
    for (const char *p = strstr(spec, ":/"); p; p = strstr(p + 1, ":/"))
        cut = p;
    snprintf(file, size, "%.*s",
             (int)(cut && cut > spec ? cut - spec : (ptrdiff_t)strlen(spec)), spec);
}

int ember_cli_output_is_csv(const char *path)
{
    char file[PATH_MAX];
    file_of(path, file, sizeof file);
    return ember_cli_has_suffix(file, ".csv") || ember_cli_has_suffix(file, ".txt");
}

/* Now, or SOURCE_DATE_EPOCH (reproducible outputs), as ISO 8601 UTC. */
static void created_now(char *buf, size_t size)
{
    const char *e = getenv("SOURCE_DATE_EPOCH");
    char *end = NULL;
    long long v = e && *e ? strtoll(e, &end, 10) : -1;
    time_t t = v >= 0 && end && !*end ? (time_t)v : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int has_name(const ember_h5_attr *a, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].name && strcmp(a[i].name, name) == 0)
            return 1;
    return 0;
}

typedef ember_cli_provenance attr_list;

static void put(attr_list *l, ember_h5_attr a)
{
    if (l->n < EMBER_CLI_MAX_ATTRS)
        l->a[l->n++] = a;
}

static void put_inputs(attr_list *l, const ember_cli *cli, const char *input,
                       char (*real)[PATH_MAX])
{
    if (input) {
        put(l, (ember_h5_attr){.name = "input",
                               .str = realpath(input, real[0]) ? real[0] : input});
        return;
    }
    for (int i = 0; i < cli->ninputs && i < 4; i++) {
        const char *role = cli->inputs[i].role;
        put(l, (ember_h5_attr){.name = role, .str = cli->inputs[i].hashed
                                                        ? cli->inputs[i].path
                                                        : cli->inputs[i].arg});
        if (!cli->inputs[i].hashed || l->nnames + 2 > 8)
            continue;
        char *nb = l->names[l->nnames++], *nx = l->names[l->nnames++];
        snprintf(nb, 64, "%s_bytes", role);
        snprintf(nx, 64, "%s_xxh3", role);
        snprintf(l->hex[l->nhex], sizeof l->hex[0], "%016" PRIx64, cli->inputs[i].xxh3);
        put(l, (ember_h5_attr){.name = nb, .kind = EMBER_U64,
                               .i = (int64_t)cli->inputs[i].bytes});
        put(l, (ember_h5_attr){.name = nx, .str = l->hex[l->nhex++]});
    }
    if (!cli->ninputs && cli->input && !(cli->prog->omit & EMBER_CLI_NO_INPUT))
        put(l, (ember_h5_attr){.name = "input",
                               .str = realpath(cli->input, real[0]) ? real[0] : cli->input});
}

/* The parameters attribute. A program with a loop records its
 * checkpoints' lines (ember_cli_parameters). One without (ember-convert,
 * ember-gen) has no checkpoints to match: it records what changes its
 * output, that is its input (by content, as the loops do) and its own
 * attributes (extra) as name=value lines. 0, or EMBER_ERANGE when they
 * do not fit. */
static int output_parameters(const ember_cli *cli, const ember_h5_attr *extra,
                             size_t nextra, char *buf, size_t size)
{
    int rc = ember_cli_parameters(cli, buf, size);
    if (rc || !(cli->prog->omit & EMBER_CLI_NO_LOOP))
        return rc;
    for (size_t i = 0; i < nextra; i++) {
        size_t len = strlen(buf);
        int n;
        if (extra[i].str)
            n = snprintf(buf + len, size - len, "%s=%s\n", extra[i].name, extra[i].str);
        else if (extra[i].kind == EMBER_F64)
            n = snprintf(buf + len, size - len, "%s=%.17g\n", extra[i].name, extra[i].f);
        else if (extra[i].kind == EMBER_U64)
            n = snprintf(buf + len, size - len, "%s=%" PRIu64 "\n", extra[i].name,
                         (uint64_t)extra[i].i);
        else
            n = snprintf(buf + len, size - len, "%s=%" PRId64 "\n", extra[i].name,
                         extra[i].i);
        if (n < 0 || (size_t)n >= size - len) {
            buf[len] = '\0';
            return EMBER_ERANGE;
        }
    }
    return EMBER_OK;
}

int ember_cli_provenance_attrs(const ember_cli *cli, const char *input,
                               const ember_h5_attr *extra, size_t nextra,
                               ember_cli_provenance *p, const char *file, char *msg)
{
    attr_list *l = p;
    memset(p, 0, sizeof *p);
    created_now(p->created, sizeof p->created);
    if (output_parameters(cli, extra, nextra, p->parameters, sizeof p->parameters))
        p->parameters[0] = '\0';
    put(l, (ember_h5_attr){.name = "program", .str = cli->prog->name});
    put(l, (ember_h5_attr){.name = "ember_version", .str = EMBER_VERSION_STRING});
    put(l, (ember_h5_attr){.name = "created", .str = p->created});
    put_inputs(l, cli, input, p->real);
    put(l, (ember_h5_attr){.name = "parameters", .str = p->parameters});
    if (!(cli->prog->omit & EMBER_CLI_NO_LOOP)) {
        const char *v = cli->prog->value_name ? cli->prog->value_name : "value";
        if (!has_name(extra, nextra, "iterations"))
            put(l, (ember_h5_attr){.name = "iterations", .kind = EMBER_I64,
                                   .i = (int64_t)cli->iterations_done});
        if (!has_name(extra, nextra, "converged"))
            put(l, (ember_h5_attr){.name = "converged", .kind = EMBER_I64,
                                   .i = cli->converged});
        if (!has_name(extra, nextra, v))
            put(l, (ember_h5_attr){.name = v, .kind = EMBER_F64, .f = cli->value});
        if (cli->forced[0])
            put(l, (ember_h5_attr){.name = "forced_resume", .str = cli->forced});
    }
    for (size_t i = 0; i < nextra; i++)
        put(l, extra[i]);
    if (l->n == EMBER_CLI_MAX_ATTRS) {
        snprintf(msg, EMBER_MSG_SIZE, "%s: too many attributes (internal)", file);
        return EMBER_EINVAL;
    }
    return EMBER_OK;
}

int ember_cli_write_provenance(const ember_cli *cli, const char *file,
                               const char *input, const ember_h5_attr *extra,
                               size_t nextra, char *msg)
{
    ember_cli_provenance p;
    int rc = ember_cli_provenance_attrs(cli, input, extra, nextra, &p, file, msg);
    return rc ? rc : ember_h5_write_attrs(file, p.a, p.n, msg);
}
