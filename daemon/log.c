/*
 * One line per message on stderr, written with a single write() so lines
 * from a forked child or a second process never interleave mid-line.
 * Under systemd stderr is the journal: "<N>" prefixes carry the priority
 * and the journal adds its own timestamps.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level max_level = LOG_INFO;
static int journal = -1; /* -1: not decided yet */

void log_set_level(enum log_level max)
{
	max_level = max;
}

void log_set_journal(int on)
{
	journal = on ? 1 : 0;
}

/*
 * systemd sets JOURNAL_STREAM to "DEV:INO" of the stream it connected;
 * comparing with stderr (as sd_journal docs advise) keeps a child whose
 * stderr was redirected elsewhere from writing "<N>" into a file.
 */
static int detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	if (!js || !*js)
		return 0;
	unsigned long long dev = 0, ino = 0;
	if (sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	struct stat st;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

static const char *level_word(enum log_level l)
{
	switch (l) {
	case LOG_ERR: return "error";
	case LOG_WARN: return "warn";
	case LOG_NOTICE: return "note";
	case LOG_INFO: return "info";
	case LOG_DEBUG: return "debug";
	}
	return "?";
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > max_level)
		return;
	if (journal < 0)
		journal = detect_journal();
	int saved = errno;
	char line[2048];
	size_t n;
	if (journal) {
		n = (size_t)snprintf(line, sizeof line, "<%d>", (int)level);
	} else {
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S ", &tm);
		n += (size_t)snprintf(line + n, sizeof line - n, "%-5s ", level_word(level));
	}
	size_t start = n;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	if (w < 0)
		w = 0;
	n += (size_t)w;
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	/* One message, one line: a newline inside (e.g. from a pen's text)
	 * would forge a second entry. */
	for (size_t i = start; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	const char *p = line;
	while (n) {
		ssize_t k = write(STDERR_FILENO, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		p += k;
		n -= (size_t)k;
	}
	errno = saved;
}
