/*
 * penctl __complete CWORD WORD...: the candidates for word number CWORD of
 * the command line WORD... (COMP_CWORD and COMP_WORDS of bash), one per
 * line.  Read from the same command and option tables that parse penctl's
 * arguments and print its --help, so completion cannot fall behind them;
 * the values that only the daemon knows (attached pens' serials, archived
 * sessions' SERIAL/UUID) are asked of penlinkd when it answers, quickly.
 * A line "__files__" asks the shell to complete a path instead.
 * cli/penctl.bash-completion is the shell's side.
 */
#include <stdlib.h>
#include <string.h>

#include "penctl.h"

/* An option's value names a path: the shell completes it. */
static bool takes_path(const char *arg)
{
	return arg && (strcmp(arg, "PATH") == 0 || strcmp(arg, "FILE") == 0 ||
	               strcmp(arg, "DIR") == 0);
}

static const struct optdef *find(const struct optdef *d, const char *word)
{
	for (; d && d->name; d++) {
		if (strcmp(d->name, word) == 0)
			return d;
		if (d->short_name && word[0] == '-' && word[1] == d->short_name &&
		    !word[2])
			return d;
	}
	return NULL;
}

static void print_opts(const struct optdef *d)
{
	for (; d && d->name; d++)
		printf("%s\n", d->name);
}

/* A serial offered to the shell must be typed back exactly as the pen
 * sent it; one that the shell would split or that needs escaping to be
 * shown (a hostile pen's) is left to the user. */
static bool plain(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-:+", *s)))
			return false;
	return true;
}

/* Asks penlinkd, with a short timeout (--timeout, 1 s unless given):
 * completion must never hang a shell. */
static bool daemon_answers(struct ctl *c)
{
	/* --central or --port: the completion asks nobody. */
	return !c->port && ctl_connect(c) == PX_OK && c->dc;
}

static void print_serials(struct ctl *c)
{
	Plctl__Response *r;
	if (!daemon_answers(c) || dc_list_pens(c, &r) != PL_OK)
		return;
	for (size_t i = 0; r->pens && i < r->pens->n_pens; i++)
		if (plain(r->pens->pens[i]->serial))
			printf("%s\n", r->pens->pens[i]->serial);
	dc_free(r);
}

static void print_sessions(struct ctl *c)
{
	struct session_entry *v;
	size_t n;
	if (!daemon_answers(c) ||
	    c->be.ops->list_sessions(c->be.ctx, 0, &v, &n) != PL_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!plain(v[i].key.serial))
			continue;
		char uuid[40];
		pl_uuid_format(v[i].key.uuid, uuid);
		printf("%s/%s\n", v[i].key.serial, uuid);
	}
	free(v);
}

/* Commands whose first argument names a session. */
static bool takes_session(const struct cmd_spec *s)
{
	return s && s->args && strstr(s->args, "SERIAL/UUID") != NULL;
}

int complete_words(struct ctl *c, const struct cmd_group *const *groups,
                   const struct optdef *global, int cword, int nwords,
                   char **words)
{
	if (cword < 1 || cword > nwords)
		return PX_USAGE;
	const char *cur = cword < nwords ? words[cword] : "";
	const struct cmd_group *g = NULL;
	const struct cmd_spec *spec = NULL;
	int positional = 0;
	const struct optdef *pending = NULL; /* the option whose value is next */

	/* Walk the words before the one being completed, as the parser would. */
	for (int i = 1; i < cword; i++) {
		const char *w = words[i];
		if (pending) {
			if (pending == find(global, "--socket"))
				c->socket = w;
			pending = NULL;
			continue;
		}
		if (w[0] == '-' && w[1]) {
			const struct optdef *d = find(global, w);
			if (!d && spec)
				d = find(spec->opts, w);
			if (d && d->arg && !strchr(w, '='))
				pending = d;
			continue;
		}
		if (!g) {
			for (size_t k = 0; groups[k]; k++)
				if (strcmp(groups[k]->word, w) == 0 ||
				    (groups[k]->alias && strcmp(groups[k]->alias, w) == 0))
					g = groups[k];
			if (g && strcmp(g->cmds[0].name, g->word) == 0)
				spec = &g->cmds[0];
			continue;
		}
		if (!spec) {
			size_t wl = strlen(g->word);
			for (const struct cmd_spec *s = g->cmds; s->name; s++)
				if (strcmp(s->name + wl + 1, w) == 0)
					spec = s;
			continue;
		}
		positional++;
	}

	if (pending) {
		if (pending == find(global, "--serial"))
			print_serials(c);
		else if (takes_path(pending->arg))
			printf("__files__\n");
		return PX_OK;
	}
	if (cur[0] == '-') {
		print_opts(global);
		if (spec)
			print_opts(spec->opts);
		return PX_OK;
	}
	if (!g) {
		for (size_t k = 0; groups[k]; k++)
			printf("%s\n", groups[k]->word);
		printf("help\n");
		return PX_OK;
	}
	if (!spec) {
		size_t wl = strlen(g->word);
		for (const struct cmd_spec *s = g->cmds; s->name; s++)
			printf("%s\n", s->name + wl + 1);
		return PX_OK;
	}
	if (positional == 0 && takes_session(spec)) {
		print_sessions(c);
		printf("__files__\n");
	} else if (positional == 0 && spec->args &&
	           (strstr(spec->args, "PATH") || strstr(spec->args, "FILE"))) {
		printf("__files__\n");
	}
	return PX_OK;
}
