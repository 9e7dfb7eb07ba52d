#!/usr/bin/env python3
"""Checks of the report tier that need more than grep (python3 standard
library only: no PIL, so the PNG is decoded here).

  check.py plots PNG              the plots were drawn: pixels of each
                                  series' colour, and the plot area's
                                  pixels vary (not blank)
  check.py dom DUMP N_SVG TEXT... the DOM Chromium built holds no script,
                                  no event handler, no element a report
                                  never writes, exactly N_SVG <svg>
                                  elements, and every TEXT as text
  check.py bytes HTML             no control character but \\n in the file
  check.py ticks HTML CLASS MIN   the plot of that class has a y tick
                                  label >= MIN (a peak survived)
"""
import html.parser
import re
import struct
import sys
import zlib


def png_pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0, "unsupported PNG"
            bpp = {2: 3, 6: 4, 0: 1, 4: 2}[ctype]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[x] = (line[x] + pr) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def plots(path):
    w, h, bpp, rows = png_pixels(path)
    colours = {"depth": (0x1F, 0x5F, 0xA8), "current": (0x2E, 0x7D, 0x32),
               "battery": (0xE6, 0x51, 0x00)}
    counts = {k: 0 for k in colours}
    box = [w, h, 0, 0]
    for y in range(0, h, 2):  # every other row and column is enough
        r = rows[y]
        for x in range(0, w * bpp, bpp * 2):
            px = (r[x], r[x + 1], r[x + 2]) if bpp >= 3 else (r[x],) * 3
            for k, c in colours.items():
                if all(abs(px[j] - c[j]) <= 60 for j in range(3)):
                    counts[k] += 1
                    xx = x // bpp
                    box = [min(box[0], xx), min(box[1], y), max(box[2], xx), max(box[3], y)]
    for k, n in counts.items():
        if n < 100:
            sys.exit("plot '%s': only %d pixels of its colour: not drawn" % (k, n))
    # the plot area's luminance varies (not one flat colour)
    vals = []
    for y in range(box[1], box[3] + 1, 2):
        r = rows[y]
        for x in range(box[0], box[2] + 1, 2):
            p = r[x * bpp:x * bpp + 3] if bpp >= 3 else r[x:x + 1] * 3
            vals.append(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / len(vals)
    if var < 50:
        sys.exit("plot area %s: luminance variance %.1f: blank" % (box, var))
    print("plots drawn: %s pixels; plot area %s, luminance variance %.0f" %
          (counts, box, var))


class Dom(html.parser.HTMLParser):
    ALLOWED = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p",
               "span", "b", "br", "table", "thead", "tbody", "tr", "th", "td",
               "div", "section", "figure", "footer", "svg", "rect", "line",
               "path", "text", "g"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.bad, self.text, self.svg = [], [], [], 0
        self.in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "svg":
            self.svg += 1
        if tag not in self.ALLOWED:
            self.bad.append("element <%s>" % tag)
        for k, v in attrs:
            if k.lower().startswith("on"):
                self.bad.append("attribute %s=%r on <%s>" % (k, v, tag))
            if v and re.search(r"javascript:|<|>", v, re.I):
                self.bad.append("attribute value %s=%r on <%s>" % (k, v, tag))
        self.in_style = tag == "style"

    def handle_endtag(self, tag):
        self.in_style = False

    def handle_data(self, data):
        if not self.in_style:
            self.text.append(data)


def dom(path, n_svg, *texts):
    d = Dom()
    d.feed(open(path, encoding="utf-8").read())
    if d.bad:
        sys.exit("injected or unexpected markup in the DOM: %s" % d.bad[:10])
    if d.svg != int(n_svg):
        sys.exit("%d <svg> elements in the DOM, expected %s" % (d.svg, n_svg))
    text = "".join(d.text)
    for t in texts:
        if t not in text:
            sys.exit("text %r is not in the page's text" % t)
    print("DOM: %d elements, %d svg, no script or handler; %d texts found"
          % (len(d.tags), d.svg, len(texts)))


def raw_bytes(path):
    data = open(path, "rb").read()
    bad = [i for i, b in enumerate(data) if (b < 0x20 and b != 0x0A) or b == 0x7F]
    if bad:
        sys.exit("control bytes at %s" % bad[:10])
    data.decode("utf-8")
    print("no control characters in %d bytes of valid UTF-8" % len(data))


def ticks(path, cls, minimum):
    page = open(path, encoding="utf-8").read()
    m = re.search(r'<svg class="plot %s".*?</svg>' % re.escape(cls), page, re.S)
    if not m:
        sys.exit("no plot of class %s" % cls)
    labels = [float(x) for x in
              re.findall(r'text-anchor="end">(-?[0-9.]+)</text>', m.group(0))]
    if not labels or max(labels) < float(minimum):
        sys.exit("plot %s: y ticks %s do not reach %s: the peak was lost"
                 % (cls, labels, minimum))
    print("plot %s: y ticks up to %s (peak %s kept)" % (cls, max(labels), minimum))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"plots": plots, "dom": dom, "bytes": raw_bytes, "ticks": ticks}[cmd](*args)
