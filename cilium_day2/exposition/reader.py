"""A streaming reader of the Prometheus text format that works family block by family block.

Most of a Cilium scrape is families the check does not submit, and on a busy node most of the
bytes are Hubble context series that are summed away. A line-by-line parser spends its time on
exactly those lines. This reader instead:

* skips a whole unmapped family block with one scan for the next comment line;
* reads the other blocks in bulk, one regular expression per label set (a "shape"), learnt from
  the block's first lines: Prometheus client libraries give every series of a family the same
  label names in the same order, so one `findall` (in C) returns the wanted label values and the
  sample value of every line. A histogram's buckets, `_sum` and `_count` are three shapes read
  the same way. The rows must add up to the lines of the block, or it is read shape by shape,
  and the lines of no shape (escaped quotes, a malformed line) one by one, with the same result
  as reading every line on its own (tests/test_reader_shapes.py);
* sums a Hubble block by the values of its bounded labels as it reads it, and hands a kept
  family's rows to the caller a block at a time, dropping exact duplicates and counting
  malformed lines instead of failing the endpoint.

Input rules, the same for the check and `doctor` (docs/limits.md):

* lines end at `\n` only: U+0085, U+2028 and other Unicode line breaks stay inside label values;
* a body that ends inside a line (no final newline, other than after `# EOF`) was cut off:
  the partial line is not read and `stats.unterminated` holds its start, for the caller to fail
  the scrape as Prometheus does ("data does not end with \n");
* a line longer than `MAX_LINE_CHARS` is skipped (and counted) without being matched or kept
  whole, so memory does not grow with line length;
* OpenMetrics is understood: an exemplar after ` # ` and a float timestamp are ignored, `# EOF`
  ends the exposition, `_created` series are not samples of the family;
* a repeated series keeps its first value. For a summed (reduced) family, whose series are not
  remembered one by one, a second block of the same family is dropped whole, and so is any
  line of it after its block; a series repeated inside its one block is added twice.

Chunks are fed as they arrive from the network, so memory stays bounded by the chunk size plus
the kept series. The reader calls `on_sample(plan, sample_name, label_pairs, value)`; what to do
with a sample (submit, type handling) is the caller's business.
"""

import operator
import re

# A line longer than this is skipped unread; a Cilium series line is a few hundred characters.
MAX_LINE_CHARS = 64 * 1024

# name{labels} value [timestamp] [# exemplar]
SAMPLE_RE = re.compile(
    r'([a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{((?:\s*[a-zA-Z_][a-zA-Z0-9_]*\s*=\s*"(?:[^"\\]|\\.)*"\s*,?)*\s*)\})?'
    r'[ \t]+(\S+)(?:[ \t]+-?[0-9][0-9.eE+-]*)?(?:[ \t]+#[ \t][^\n]*)?[ \t\r]*$'
)
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
ESCAPES_RE = re.compile(r'\\(.)')

SKIP, KEEP, REDUCE, LOOSE, EXTRA = range(5)
# A sample value the block path takes as is (`float()` accepts every one); any other value makes
# its line odd, read by the line path, which counts it as malformed.
VALUE = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN"
# Label sets read in bulk per family block; lines of further shapes are read one by one.
MAX_SHAPES = 4
_ALL_BUT_LAST = operator.itemgetter(slice(None, -1))
# Compiled shape regexes by source. A scrape's shapes are the same run after run, and `re`'s own
# cache is shared with everything else in the Agent's process.
_COMPILED = {}
_MAX_COMPILED = 4096


def _compile(source):
    compiled = _COMPILED.get(source)
    if compiled is None:
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.clear()
        compiled = _COMPILED[source] = re.compile(source, re.M)
    return compiled


def _next_comment(text, pos, n):
    """Where the next comment line after `pos` starts in `text[:n]` (`n` when there is none).
    One scan for `#` (memchr), which is a line start unless a label value or an exemplar holds
    one; only then the slower search for a line end followed by `#`."""
    at = text.find("#", pos + 1, n)
    if at == -1:
        return n
    if text[at - 1] != "\n":
        at = text.find("\n#", at, n) + 1
        if at == 0:
            return n
    return at


def _sums_by_key(names, rows):
    """{bounded label values: sum of the values} for rows of (label values..., value text).
    Raises ValueError, before anything is kept, when a value is not a number."""
    if not names:
        return {(): sum(map(float, rows))}
    groups = {}
    add_to = groups.setdefault
    for row in rows:
        add_to(row[:-1], []).append(row[-1])
    # Convert and add each group in C: cheaper per series than one at a time.
    return {key: sum(map(float, values)) for key, values in groups.items()}


def looks_like_exposition(line):
    """Whether a line could begin a comment or a sample of the text format (a metric name)."""
    return bool(re.match(r"[ \t]*(#|[a-zA-Z_:][a-zA-Z0-9_:]*([ \t{]|$))", line))


def unescape(value):
    if "\\" not in value:
        return value
    return ESCAPES_RE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_labels(text):
    return [(k, unescape(v)) for k, v in LABEL_RE.findall(text)] if text else []


class FamilyPlan:
    """What the reader needs to know about one wanted family."""

    __slots__ = ("family", "kind", "reduce", "data")

    def __init__(self, family, kind, reduce=None, data=None):
        self.family = family
        self.kind = kind  # "gauge", "counter" or "histogram"
        self.reduce = frozenset(reduce) if reduce is not None else None
        self.data = data  # anything the caller wants back with each sample


def sample_names(family, kind):
    """Every name a family's lines or HELP/TYPE comments can carry."""
    if kind == "histogram":
        return [family, family + "_bucket", family + "_sum", family + "_count"]
    if kind == "counter":
        if family.endswith("_total"):
            return [family, family[: -len("_total")]]
        return [family, family + "_total"]
    return [family]


class Shape:
    """One label set of a family block: the regexes that read its lines in bulk.

    The careful regex reads any line of the label set: escaped characters excluded, timestamp
    and exemplar allowed, the value checked to be a number. The fast one is what most scrapes
    need, and about a third cheaper to run: label values are `[^"]*` (a plain scan for the next
    quote, where `[^"\\\n]*` tests every character against a set), no exemplar, and for summed
    families the value is any non-blank text, converted by the caller. It is used only on text
    with no backslash at all, and only when its rows add up to the lines of the run (see
    `_match_whole`), which together leave no room for a value running over a line end.

    Each comes in two forms that read the same lines. Anchored (`^name{...`) is the cheapest
    when nearly every line is one of this shape's. Scanning (`name{label="` found by a fast
    literal search, then checked to start a line) is the cheapest when most lines are of other
    shapes: the anchored form tries every character of those lines, one at a time.
    """

    __slots__ = ("sample_name", "names", "rows", "interleaved", "_sources", "_compiled")

    def __init__(self, sample_name, names, prefix, careful, fast):
        self.sample_name = sample_name
        self.names = names  # the captured label names, in line order
        self.rows = 0  # rows read so far in this block, to try the most common shape first
        self.interleaved = False  # lines of other shapes came between this one's
        anchored, scanning = f"^{prefix}", f"{prefix}(?<=^{prefix})"
        self._sources = (anchored + careful, scanning + careful, anchored + fast, scanning + fast)
        self._compiled = [None] * 4

    def regex(self, fast=False, scan=False):
        index = 2 * fast + scan
        compiled = self._compiled[index]
        if compiled is None:
            compiled = self._compiled[index] = _compile(self._sources[index])
        return compiled

    @property
    def key(self):
        return self._sources[0]

    def fresh(self):
        """The same shape for a new block: its regexes, none of the last block's counts."""
        shape = Shape.__new__(Shape)
        shape.sample_name, shape.names, shape._sources, shape._compiled = (
            self.sample_name, self.names, self._sources, self._compiled)
        shape.rows, shape.interleaved = 0, False
        return shape


class ReadStats:
    __slots__ = ("lines", "kept", "malformed", "duplicates", "first_malformed", "reduced_in", "recognised",
                 "too_long", "families", "unterminated")

    def __init__(self):
        self.lines = 0
        self.kept = 0
        self.malformed = 0
        self.duplicates = 0
        self.first_malformed = None
        self.reduced_in = 0
        # Comments and valid kept samples: none at all in a non-empty body means it was not an
        # exposition (an HTML page, JSON, ...).
        self.recognised = 0
        self.too_long = 0  # lines over MAX_LINE_CHARS, skipped
        self.unterminated = ""  # the start of a last line with no newline: the body was cut off
        # Family names seen in HELP/TYPE comments or kept samples: tells a Cilium endpoint from
        # another exporter's.
        self.families = set()


class ExpositionReader:
    def __init__(self, plans, on_sample, extra_match=None, on_rows=None):
        """`on_rows(plan, sample_name, label_names, rows)`, if given, receives whole blocks of a
        kept family at once, one sample name at a time (a histogram's `_bucket`, `_sum` and
        `_count` lines come as separate calls): `rows` are tuples of label values with the
        sample value text last, all with the same `label_names`."""
        self.on_rows = on_rows
        self.lookup = {}
        for plan in plans:
            for name in sample_names(plan.family, plan.kind):
                self.lookup[name] = plan
        self.on_sample = on_sample
        self.extra_match = extra_match
        # The shapes each family's block had in the last read, which the next read tries first:
        # the label sets of an endpoint rarely change from one scrape to the next.
        self.remembered = {}
        self._reset()

    def _reset(self):
        self.stats = ReadStats()
        self.extra_lines = []
        self.mode = LOOSE
        self._base_line = 0
        self.plan = None
        self.block = None  # the Shapes of the current family block
        self.fast = True  # the current block may be read with the Shapes' fast patterns
        self.seen = set()  # summed families' series read one by one, as `name{labels` text
        # Kept families' series, read in bulk or one by one: (plan, sample name, label names)
        # -> {label values}, so that a repeat is one whichever path read either copy.
        self.seen_rows = {}
        self.positional = {}  # (plan, sample name, kept label names) -> {values: sum}
        self.loose_sums = {}  # (plan, sample name, ((label, value), ...)) -> sum
        self.ended = set()  # reduced plans whose block is over: a repeat of them is dropped
        # Reduced plans with series read one by one outside their block (no comment before them,
        # or inside another family's block): their block must be read one by one too, to drop
        # the repeats of those series.
        self.loose_reduced = set()
        self.eof = False

    # -- input --------------------------------------------------------------------------------
    def read(self, chunks):
        """Consume an iterable of text chunks (any split), then flush the reduced families."""
        self._reset()
        carry = ""
        discarding = False  # inside an over-long line: drop input up to its end
        for chunk in chunks:
            if not chunk:
                continue
            if discarding:
                end = chunk.find("\n")
                if end == -1:
                    continue
                chunk = chunk[end + 1 :]
                discarding = False
            if carry:
                chunk = carry + chunk
            cut = chunk.rfind("\n") + 1
            if cut == 0:
                carry = chunk
            else:
                self._process(chunk, cut)
                if self.eof:
                    break
                carry = chunk[cut:]
            if len(carry) > MAX_LINE_CHARS:
                self._too_long(carry)
                carry, discarding = "", True
        if carry.strip() and not self.eof:
            if carry.strip() == "# EOF":
                self._process(carry + "\n", len(carry) + 1)
            else:
                # The body ends inside a line: a truncated response. Prometheus fails such a
                # scrape ("data does not end with \n"); the partial line is not read (its value
                # may be cut short), and the caller rejects the scrape.
                self.stats.unterminated = carry[:60]
        self._remember()
        self._flush_reduced()
        return self.stats

    def _remember(self):
        """Keep the shapes that read lines in the block just ended, most rows first."""
        if self.block and self.plan is not None:
            shapes = [shape for shape in self.block if shape.rows]
            if shapes:
                self.remembered[self.plan] = sorted(shapes, key=lambda s: -s.rows)

    def _too_long(self, text):
        stats = self.stats
        stats.too_long += 1
        stats.malformed += 1
        if stats.first_malformed is None:
            stats.first_malformed = (None, f"a line longer than {MAX_LINE_CHARS} characters, starting {text[:60]!r}")

    # -- blocks ---------------------------------------------------------------------------------
    def _process(self, text, n):
        """Read `text[:n]`, whole lines ending in `\\n`."""
        stats = self.stats
        self._base_line = stats.lines  # lines before this chunk, for error messages
        lines = 0  # counted region by region: a block's count is also what its reading needs
        find = text.find
        pos = 0
        while pos < n:
            char = text[pos]
            if char == "#":
                end = find("\n", pos)
                lines += 1
                if end - pos > MAX_LINE_CHARS:
                    self._too_long(text[pos:pos + 60])
                elif self._comment(text[pos:end]):
                    self.eof = True
                    break
                pos = end + 1
            elif char == "\n" or char == "\r":
                lines += char == "\n"
                pos += 1
            elif self.mode == SKIP:
                end = _next_comment(text, pos, n)
                lines += text.count("\n", pos, end)
                pos = end
            elif self.mode == REDUCE or (self.mode == KEEP and self.on_rows is not None):
                end = _next_comment(text, pos, n)
                count = text.count("\n", pos, end)
                lines += count
                if self.mode == REDUCE:
                    if self.plan in self.loose_reduced:
                        self._lines(text, pos, end)
                    else:
                        self._reduce_block(text, pos, end, count)
                else:
                    self._keep_block(text, pos, end, count)
                pos = end
            else:
                end = find("\n", pos)
                lines += 1
                self._line(text, pos, end)
                pos = end + 1
        stats.lines += lines

    def _comment(self, line):
        """Handle a comment line; True for OpenMetrics' `# EOF`, the end of the exposition."""
        self.stats.recognised += 1
        parts = line.split(None, 3)
        if len(parts) < 3 or parts[1] not in ("TYPE", "HELP"):
            return len(parts) == 2 and parts[1] == "EOF"
        name = parts[2]
        self.stats.families.add(name)
        plan = self.lookup.get(name)
        if plan is not self.plan:
            self._remember()
            self.block = None
        if self.plan is not None and plan is not self.plan and self.mode == REDUCE:
            self.ended.add(self.plan)
        if plan is not None and plan in self.ended:
            # A summed family's second block: its series may repeat the first's, which are no
            # longer known one by one; first block wins.
            self.mode, self.plan = SKIP, None
            self.stats.duplicates += 1
            return False
        if plan is None:
            if self.extra_match is not None and self.extra_match(name):
                self.mode, self.plan = EXTRA, None
                self.extra_lines.append(line)
            else:
                self.mode, self.plan = SKIP, None
            return False
        if plan is not self.plan or self.mode not in (KEEP, REDUCE):
            self.block, self.fast = None, True
        self.plan = plan
        self.mode = REDUCE if plan.reduce is not None else KEEP
        return False

    def _reduce_block(self, text, pos, end, count):
        """Sum a run of lines of a reduced family, by the values of its bounded labels."""
        try:
            totals, odd = self._sum_block(text, pos, end, count)
        except ValueError:
            # The fast patterns took a value that is not a number: read the run again with the
            # careful ones, which leave such a line to the line path (counted as malformed).
            self.fast = False
            totals, odd = self._sum_block(text, pos, end, count)
        stats = self.stats
        for sample_name, names, count, totals_by_key in totals:
            stats.kept += count
            stats.recognised += count
            stats.reduced_in += count
            sums = self.positional.setdefault((self.plan, sample_name, names), {})
            get = sums.get
            for key, value in totals_by_key.items():
                sums[key] = get(key, 0.0) + value
        for start, stop in odd:
            self._lines(text, start, stop)

    def _sum_block(self, text, pos, end, count):
        """([(sample name, label names, rows read, {key: sum})], odd line ranges) for a run."""
        shapes, odd = self._match_block(text, pos, end, count, self.plan.reduce)
        return [(sample_name, names, len(rows), _sums_by_key(names, rows)) for sample_name, names, rows in shapes], odd

    def _keep_block(self, text, pos, end, count):
        """Hand a run of lines of a kept gauge or counter family to `on_rows` in one piece."""
        shapes, odd = self._match_block(text, pos, end, count, None)
        if any(not names for _, names, _ in shapes):
            # Unlabelled series (a family of one): the line path handles them and their duplicates.
            self._lines(text, pos, end)
            return
        for sample_name, names, rows in shapes:
            count = len(rows)
            seen = self.seen_rows.setdefault((self.plan, sample_name, names), set())
            keys = set(map(_ALL_BUT_LAST, rows))
            if len(keys) == count and seen.isdisjoint(keys):
                seen |= keys
            else:
                # A repeated series: keep the first of each, as the line path does.
                kept = []
                for row in rows:
                    key = row[:-1]
                    if key in seen:
                        self.stats.duplicates += 1
                        continue
                    seen.add(key)
                    kept.append(row)
                rows = kept
            self.stats.kept += len(rows)
            self.stats.recognised += count
            self.on_rows(self.plan, sample_name, names, rows)
        for start, stop in odd:
            self._lines(text, start, stop)

    def _match_block(self, text, pos, end, count, allowed):
        """Split a run of sample lines of one family into shapes read in bulk and odd lines.

        Returns ([(sample name, captured label names, rows)], [(start, stop)]): each entry's rows
        come from one `findall` (or `finditer`, when lines of other shapes sit between them), and
        a shape has one entry per stretch between lines with a backslash, which fit no shape;
        the odd ranges hold the lines no shape fits (escaped characters, a label set beyond
        `MAX_SHAPES`, a malformed line), to be read line by line. Exporters give all series of a
        family the same label names, so the common case is one shape and no odd line; a family
        that mixes label sets costs one more pass per shape, and an odd line costs one line.
        """
        if self.block is None:
            self.block = [shape.fresh() for shape in self.remembered.get(self.plan, ())]
        escape = text.find("\\", pos, end)
        if escape == -1:
            return self._match_plain(text, pos, end, count, allowed, fast=self.fast)
        # A line with a backslash in it fits no shape (the careful patterns exclude escapes):
        # it goes to the line path, and the runs between such lines are read as usual.
        found, odd = [], []
        start = pos
        while escape != -1:
            line_start = text.rfind("\n", start, escape) + 1 or start
            line_end = text.find("\n", escape, end) + 1 or end
            if line_start > start:
                rows, more = self._match_plain(text, start, line_start, text.count("\n", start, line_start), allowed,
                                               fast=self.fast)
                found += rows
                odd += more
            odd.append((line_start, line_end))
            start = line_end
            escape = text.find("\\", start, end)
        if start < end:
            rows, more = self._match_plain(text, start, end, text.count("\n", start, end), allowed, fast=self.fast)
            found += rows
            odd += more
        return found, odd

    def _match_plain(self, text, pos, end, count, allowed, fast):
        """`_match_block` for a run with no backslash in it."""
        shapes = self.block
        if fast:
            whole, _ = self._match_whole(text, pos, end, count, allowed, shapes, fast=True)
            if whole is not None:
                return whole, []
            # Lines the fast patterns do not read (exemplars, a malformed line): the rest of this
            # block is read the careful way.
            self.fast = False
        whole, first = self._match_whole(text, pos, end, count, allowed, shapes)
        if whole is not None:
            return whole, []
        found, remaining = [], [(pos, end)]
        for index in range(MAX_SHAPES):
            if index == len(shapes):
                start, stop = remaining[0]
                line_end = text.find("\n", start, stop)
                shape = self._block_pattern(text[start : stop if line_end == -1 else line_end], allowed)
                if (shape is None or self.lookup.get(shape.sample_name) is not self.plan
                        or any(known.key == shape.key for known in shapes)):
                    # Not a sample line of this family (a line of another family is the line
                    # path's to place), or one of a known shape that its pattern cannot read.
                    break
                shapes.append(shape)
            shape = shapes[index]
            rows, remaining = self._apply_shape(text, remaining, shape, first if index == 0 else None)
            if rows:
                shape.rows += len(rows)
                found.append((shape.sample_name, shape.names, rows))
            if not remaining:
                break
        if len(shapes) > 1:
            # The most common label set first: in the next chunk it takes the whole block in one
            # `findall` and leaves the rare ones to the others.
            shapes.sort(key=lambda s: -s.rows)
        return found, remaining

    def _match_whole(self, text, pos, end, count, allowed, shapes, fast=False):
        """Read a run of `count` lines whose every line fits one of a few shapes, interleaved or
        not, with one `findall` per shape; None when some line fits none of them.

        A histogram's series come as buckets, then `_sum`, then `_count`, series after series:
        three shapes, always interleaved. Each shape's pattern names its sample name and every
        label, so a line fits at most one of them, and when the rows found add up to the lines
        of the run, every line was read. The shapes are the family's from the last read, or
        else learnt from the run's first lines.

        With `fast`, the shapes' fast patterns are used (the caller has checked that the run has
        no backslash). Their label values may run over a line end, yet rows adding up to the
        lines still means one row per line. The first row that runs over starts on a line with
        an odd number of quotes, and no row ends there: a one-line row has an even number, and
        any other would have started earlier. So some line would have to end two rows, and none
        can. Two one-line rows would be two shapes with the same name and labels (the shapes are
        distinct); a one-line row and a longer one disagree on the line's quotes being even; two
        longer rows are either one shape, or read the quotes one out of step, so that the last
        one closes a value for one row and opens a value for the other.

        Returns (rows by shape or None, the first shape's rows over the whole run or None), the
        latter for the shape-by-shape path to reuse."""
        if any(shape.interleaved for shape in shapes):
            return None, None  # this block has lines of no shape: it is read shape by shape
        if not shapes and not self._learn_shapes(text, pos, end, allowed, shapes, lines=1):
            return None, None
        first = shapes[0].regex(fast).findall(text, pos, end)
        reuse = None if fast else first
        # The first shape is the most common; the others are looked for between its lines.
        found = [(shapes[0], first)]
        total = len(first)
        for attempt in range(2):
            if total == count:
                break
            if attempt == 1:
                # Lines of no known shape: learn the shapes of the run's first lines, once.
                known = len(shapes)
                if known == MAX_SHAPES or not self._learn_shapes(text, pos, end, allowed, shapes) or known == len(shapes):
                    return None, reuse
            for shape in shapes[len(found):]:
                rows = shape.regex(fast, scan=True).findall(text, pos, end)
                found.append((shape, rows))
                total += len(rows)
        if total != count:
            return None, reuse
        out = []
        for shape, rows in found:
            if rows:
                shape.rows += len(rows)
                out.append((shape.sample_name, shape.names, rows))
        if len(shapes) > 1:
            shapes.sort(key=lambda s: -s.rows)
        return out, reuse

    def _learn_shapes(self, text, pos, end, allowed, shapes, lines=64):
        """Add the shapes of the run's first `lines` lines that no known shape fits (up to
        MAX_SHAPES in all); False when a line fits no shape at all (malformed, escaped)."""
        for _ in range(lines):
            if pos >= end:
                break
            stop = text.find("\n", pos, end)
            stop = end if stop == -1 else stop
            if not any(shape.regex().match(text, pos, stop) for shape in shapes):
                if len(shapes) == MAX_SHAPES:
                    return False
                shape = self._block_pattern(text[pos:stop], allowed)
                if shape is None or self.lookup.get(shape.sample_name) is not self.plan:
                    return False  # not a sample of this family (an OpenMetrics `_created` line)
                if not shape.regex().match(text, pos, stop):
                    return False
                shapes.append(shape)
            pos = stop + 1
        return True

    def _apply_shape(self, text, ranges, shape, matched_whole=None):
        """The rows `shape` matches in `ranges`, and the sub-ranges of lines it does not.
        `matched_whole`: its careful `findall` over the single range given, when already done."""
        rows, left = [], []
        for start, stop in ranges:
            if shape.interleaved:
                # Lines of other shapes sat between this one's before: find the gaps directly.
                self._split(text, start, stop, shape.regex(scan=True), rows, left)
                continue
            matched = shape.regex().findall(text, start, stop) if matched_whole is None else matched_whole
            count = text.count("\n", start, stop) + (0 if stop == start or text[stop - 1] == "\n" else 1)
            if len(matched) == count:
                rows.extend(matched)
                continue
            # OpenMetrics interleaves `<name>_created` lines with a counter's samples.
            if shape.sample_name.endswith("_total"):
                created = shape.sample_name[: -len("_total")] + "_created"
                extra = text.count("\n" + created, start, stop) + text.startswith(created, start)
                if extra and len(matched) == count - extra:
                    rows.extend(matched)
                    continue
            shape.interleaved = True
            self._split(text, start, stop, shape.regex(scan=True), rows, left)
        return rows, left

    @staticmethod
    def _split(text, start, stop, pattern, rows, left):
        """Append the rows `pattern` matches in [start, stop) to `rows`, and the ranges of the
        lines between them to `left`."""
        cursor = start
        single = pattern.groups == 1
        for match in pattern.finditer(text, start, stop):
            if match.start() > cursor:
                left.append((cursor, match.start()))
            rows.append(match.group(1) if single else match.groups())
            cursor = match.end() + 1
        if cursor < stop:
            left.append((cursor, stop))

    def _block_pattern(self, first_line, allowed):
        """A regex for lines shaped like `first_line`, capturing the values of the `allowed`
        labels (all labels when None) and the sample value."""
        if len(first_line) > MAX_LINE_CHARS:
            return None
        match = SAMPLE_RE.match(first_line)
        if match is None:
            return None
        sample_name = match.group(1)
        labels = [label for label, _ in LABEL_RE.findall(match.group(2) or "")]
        names = tuple(label for label in labels if allowed is None or label in allowed)
        # The same timestamp as the line path's; an OpenMetrics exemplar may follow it.
        timestamp = r"(?: -?[0-9][0-9.eE+-]*)?"
        # A summed family's values are converted in bulk by the caller, which reads the run again
        # carefully when one is not a number; a kept family's rows go out as they are.
        value = r"\S+" if allowed is not None else VALUE
        careful_tail = f" ({VALUE}){timestamp}(?: # [^\\n]*)?$"
        fast_tail = f" ({value}){timestamp}$"
        if not labels:
            prefix = re.escape(sample_name)
            return Shape(sample_name, names, prefix, r"(?:\{\})?" + careful_tail, r"(?:\{\})?" + fast_tail)
        # The literal start of every line, up to the first label's value.
        prefix = f'{re.escape(sample_name)}\\{{{labels[0]}="'

        def rest(value_class):
            parts = []
            for index, label in enumerate(labels):
                text = f"({value_class})" if label in names else value_class
                parts.append(f'{text}"' if index == 0 else f',{label}="{text}"')
            return "".join(parts) + r",?\}"

        return Shape(sample_name, names, prefix, rest(r'[^"\\\n]*') + careful_tail, rest('[^"]*') + fast_tail)

    def _lines(self, text, pos, end):
        while pos < end:
            stop = text.find("\n", pos, end)
            if stop == -1:
                stop = end
            if stop > pos:
                self._line(text, pos, stop)
            pos = stop + 1

    # -- lines ----------------------------------------------------------------------------------
    def _line(self, text, pos, end):
        if end - pos > MAX_LINE_CHARS:
            self._too_long(text[pos : pos + 60])
            return
        line = text[pos:end]
        brace = line.find("{")
        space = line.find(" ")
        cut = brace if brace != -1 and (space == -1 or brace < space) else space
        name = line[:cut] if cut != -1 else line
        plan = self.lookup.get(name)
        if plan is None:
            if self.mode == EXTRA or (self.extra_match is not None and self.extra_match(name)):
                self.extra_lines.append(line)
            return
        stats = self.stats
        match = SAMPLE_RE.match(line.strip())
        if match is None:
            value = None
        else:
            try:
                value = float(match.group(3))
            except ValueError:
                value = None
        if value is None:
            stats.malformed += 1
            if stats.first_malformed is None:
                stats.first_malformed = (self._base_line + text.count("\n", 0, pos) + 1, line[:120])
            return
        stats.recognised += 1
        labels = match.group(2) or ""
        if plan.reduce is None:
            # The series a kept family's block rows were read as, so that a series repeated
            # once on this path and once in bulk (a family exposed twice) is still a repeat.
            pairs = parse_labels(labels)
            seen = self.seen_rows.setdefault((plan, name, tuple(k for k, _ in pairs)), set())
            values = tuple(v for _, v in pairs)
            if values in seen:
                stats.duplicates += 1
                return
            seen.add(values)
            stats.kept += 1
            stats.families.add(name)
            self.on_sample(plan, name, pairs, value)
            return
        key = name + "{" + labels
        if key in self.seen or plan in self.ended:
            # A repeat; after its block, a summed family's series are no longer known one by
            # one, so any line of it is taken for a repeat, as its second block would be.
            stats.duplicates += 1
            return
        self.seen.add(key)
        if plan is not self.plan:
            self.loose_reduced.add(plan)
        stats.kept += 1
        stats.families.add(name)
        stats.reduced_in += 1
        kept = tuple(sorted((k, v) for k, v in parse_labels(labels) if k in plan.reduce))
        sum_key = (plan, name, kept)
        self.loose_sums[sum_key] = self.loose_sums.get(sum_key, 0.0) + value

    def _flush_reduced(self):
        totals = self.loose_sums
        for (plan, name, names), sums in self.positional.items():
            for values, value in sums.items():
                key = (plan, name, tuple(sorted(zip(names, values))))
                totals[key] = totals.get(key, 0.0) + value
        for (plan, name, pairs), value in totals.items():
            if value == value:  # NaN anywhere in a group poisons only that group
                self.on_sample(plan, name, list(pairs), value)
