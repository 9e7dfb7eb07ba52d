/*
 * What one pen may cost penlinkd in memory: a budget for every quantity a
 * pen controls, in one place.  A pen is a USB device anyone can plug in,
 * so each number below bounds what the daemon holds whatever the pen
 * sends; past a budget the pen is refused (the session stays on it) or
 * detached, with a logged reason naming the budget, and the other pens go
 * on.  Together they keep penlinkd's peak memory under PEN_MEMORY_BOUND
 * with 127 pens attached (README, "Reliability": the budgets table).
 *
 * The rate budgets that tell a hostile pen from a noisy line (oversized,
 * malformed and unsolicited frames, replies under unknown ids, input that
 * never makes a frame, a trickle) are in device.c beside the code that
 * applies them: they bound time and attention more than memory, since
 * everything they count is dropped as it arrives.
 */
#ifndef PLD_PEN_BUDGET_H
#define PLD_PEN_BUDGET_H

/* The documented bound on penlinkd's peak resident memory (bytes) whatever
 * pens and clients send; the tests read VmHWM against it. */
#define PEN_MEMORY_BOUND (64u * 1024u * 1024u)

/*
 * Frame size: the largest frame the daemon takes from a pen (its Hello
 * says so; larger frames are dropped without being buffered, and a pen
 * that keeps sending them is detached, device.c).  32 KiB holds a full
 * page of session metadata and a download chunk large enough for full
 * speed.  Each pen's frame decoder holds one frame, beside the library's
 * 64 KiB read buffer: about 100 KiB a pen, 13 MiB for 127.
 */
#define PEN_MAX_FRAME (32u * 1024u)

/*
 * Session list: at most this many of a pen's sessions are held at once.
 * A pen that lists more is taken a window at a time (listed from after the
 * last session of the previous window), so every session still gets
 * archived in the same round, and the daemon holds 512 * ~90 bytes
 * (45 KiB) per pen, 6 MiB for 127 pens, instead of 90 MB for a pen
 * claiming a million sessions.  512 is far more than a pen records
 * between two attaches (a clinic day is a dozen), so real pens list in
 * one window.
 */
#define PEN_LIST_WINDOW 512u

/*
 * Failed sessions: sessions a pen listed but did not serve (the download
 * failed on the pen's side, the record failed its SHA-256 twice, or it is
 * over PEN_RECORD_MAX), per round.  One such session is a flash fault and
 * stays on the pen; 32 in one round is a pen listing what it does not
 * have (or a broken one), and it is detached before it makes the daemon
 * log and ask for each of a million invented sessions.  Failures of the
 * archive (disk full) are not the pen's and do not count.
 */
#define PEN_FAILED_MAX 32u

/*
 * Record size: the largest session record accepted from a pen.  A
 * 60-minute session with 1 kHz telemetry is about 20 MB; a record over
 * 64 MiB is refused before any of it is downloaded (it stays on the pen,
 * logged).  Memory does not depend on it: downloads are stored in
 * batches of at most PEN_BUF_MAX and committed by streaming (archive.c);
 * it bounds the disk and the time one session may take.
 */
#define PEN_RECORD_MAX (64ull * 1024u * 1024u)

/*
 * Decode size: records up to this size are parsed at commit for their
 * event and telemetry rows, which needs the record and its decoded form
 * in memory at once (about 5 times the record for telemetry of one-byte
 * values, since each becomes a 4-byte integer): 8 MiB costs at most about
 * 40 MB, once, under PEN_MEMORY_BOUND.  A larger record is archived byte
 * for byte all the same, with a decode error naming this budget, and
 * exports give its archive columns only.
 */
#define PEN_DECODE_MAX (8u * 1024u * 1024u)

/*
 * Download buffers: downloaded bytes are held and appended to the archive
 * in batches (one transaction each; a kill -9 loses at most one).  The
 * budget is shared by the pens downloading at once (a hundred pens must
 * fit the memory bound); past it each gets the minimum.
 */
#define PEN_BUF_MAX (256u * 1024u)
#define PEN_BUF_MIN (16u * 1024u)
#define PEN_BUF_BUDGET (2u * 1024u * 1024u)

/*
 * In-flight replies: bytes of chunk requests in flight, shared by every
 * pen downloading; the library holds at most a window of early replies
 * per download, so this also bounds replies held in memory.  A request
 * waits behind the replies requested before it, and the loop gives each
 * pen an equal turn, so a pen's bytes in flight over its share of the
 * bandwidth is the latency its requests see: full windows on a hundred
 * pens would run past the request timeout.  A pen alone gets its full
 * window.
 */
#define PEN_INFLIGHT_BUDGET (2u * 1024u * 1024u)

/*
 * Requests in flight to one pen, whatever more it allows: 8 frames of
 * PEN_MAX_FRAME (256 KiB) hide a USB high-speed link's round trip, and a
 * pen holding replies back can then send at most 8 times 3 attempts of a
 * killed daemon's after the next one's handshake, under the unknown-id
 * budget (UNKNOWN_ID_CAP, device.c).
 */
#define PEN_WINDOW_MAX 8u

/*
 * Trace volume: trace lines are forwarded to subscribed clients as they
 * arrive and never stored by the daemon; each is one frame (at most
 * PEN_MAX_FRAME), and their rate is held by the unsolicited-frame budget
 * in device.c (20000 a second with a subscription, else 2000; over it
 * the pen is detached).  What a slow client leaves queued is that
 * client's output budget (ctl.c).
 */

#endif
