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
#include <sys/stat.h>
#include <unistd.h>

#include <penlink.h>

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
	char msg[2048], clean[4096], line[4200], when[PL_TIME_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* One message, one line, however it was made: a pen's or a client's
	 * text inside (a newline, an escape sequence) must neither forge a
	 * second entry nor reach the administrator's terminal raw. */
	pl_text_clean(PL_TEXT_LOG, msg, clean, sizeof clean);
	int n = journal ? snprintf(line, sizeof line, "<%d>%s\n", (int)level, clean)
	                : snprintf(line, sizeof line, "%s %-5s %s\n",
	                           pl_time_format_local(pl_time_utc_ms(), when),
	                           level_word(level), clean);
	size_t left = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	if (left && line[left - 1] != '\n')
		line[left - 1] = '\n';   /* cut: still one whole line */
	const char *p = line;
	while (left) {
		ssize_t k = write(STDERR_FILENO, p, left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		p += k;
		left -= (size_t)k;
	}
	errno = saved;
}
