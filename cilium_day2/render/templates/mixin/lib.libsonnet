// cilium-day2 mixin library: the steps of `cilium-day2 render` that depend on `_config` values.
// Each function is the twin of the Python function named in its comment; tests/test_mixin.py
// checks that this mixin's output equals `render`'s, for the defaults and for overrides.

// std.format's %g overflows on 0 (jsonnet 0.18); Python prints `0`.
local g(spec, v) = if v == 0 then '0' else std.format(spec, v);

{
  fmt(spec, v):: g(spec, v),

  // catalog.model.parse_duration: 90, '90s', '5m', '1h30m' -> seconds.
  seconds(v)::
    if std.isNumber(v) then v
    else
      local step(state, ch) =
        if ch >= '0' && ch <= '9' then local n = state.n * 10 + std.parseInt(ch); state { n: n }
        else if ch == 'h' then { total: state.total + state.n * 3600, n: 0 }
        else if ch == 'm' then { total: state.total + state.n * 60, n: 0 }
        else if ch == 's' then { total: state.total + state.n, n: 0 }
        else error 'cilium-day2 mixin: not a duration (30s, 5m, 1h): ' + v;
      local r = std.foldl(step, std.stringChars(v), { total: 0, n: 0 });
      assert r.n == 0 : 'cilium-day2 mixin: a duration needs a unit (30s, 5m, 1h): ' + v;
      r.total,

  // catalog.model.format_duration
  formatDuration(s)::
    if s == 0 then '0s'
    else
      local h = std.floor(s / 3600), mi = std.floor((s % 3600) / 60), se = s % 60;
      (if h > 0 then '%dh' % h else '') + (if mi > 0 then '%dm' % mi else '') + (if se > 0 then '%ds' % se else ''),

  duration(v):: self.formatDuration(self.seconds(v)),

  // render.text: humanize, humanize_duration, plain, format_value, format_threshold
  local belowOne(v) =
    std.foldl(function(st, p) if std.abs(st.v) >= 1 then st { done: true } else if st.done then st
              else { v: st.v * 1000, prefix: p, done: false },
              ['m', 'u', 'n', 'p', 'f', 'a', 'z', 'y'], { v: v, prefix: '', done: false }),
  humanize(v)::
    if v == 0 then '0'
    else if std.abs(v) >= 1 then
      local r = std.foldl(function(st, p) if st.done || std.abs(st.v) < 1000 then st { done: true }
                          else { v: st.v / 1000, prefix: p, done: false },
                          ['k', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'], { v: v, prefix: '', done: false });
      g('%.4g', r.v) + r.prefix
    else
      local r = belowOne(v);
      g('%.4g', r.v) + r.prefix,
  humanizeDuration(v)::
    if v == 0 then '0s'
    else if std.abs(v) >= 1 then
      local sign = if v < 0 then '-' else '', t = std.floor(std.abs(v));
      local d = std.floor(t / 86400), h = std.floor(t / 3600) % 24, mi = std.floor(t / 60) % 60, se = t % 60;
      if d > 0 then '%s%dd %dh %dm %ds' % [sign, d, h, mi, se]
      else if h > 0 then '%s%dh %dm %ds' % [sign, h, mi, se]
      else if mi > 0 then '%s%dm %ds' % [sign, mi, se]
      else sign + g('%.4g', std.abs(v)) + 's'
    else
      local r = belowOne(v);
      g('%.4g', r.v) + r.prefix + 's',
  plain(v):: if std.abs(v) >= 1000 then self.humanize(v) else g('%.4g', v),
  local suffix = { per_second: '/s', factor: 'x' },
  formatValue(unit, v)::
    if unit == 'ratio' then g('%.4g', v * 100) + '%'
    else if unit == 'seconds' then self.humanizeDuration(v)
    else self.plain(v) + std.get(suffix, unit, ''),
  threshold(unit, v)::
    if unit == 'seconds' && v >= 1 && v == std.floor(v) then self.formatDuration(v) else self.formatValue(unit, v),

  // catalog.buckets.le_forms, as the regex the `le` matcher holds (`1|1\\.0`, `0\\.25`).
  leRegex(v)::
    local t = g('%g', v);
    assert std.length(std.findSubstr('e', t)) == 0 : 'cilium-day2 mixin: bucket bound too small or large: ' + t;
    if std.length(std.findSubstr('.', t)) > 0 then std.strReplace(t, '.', '\\\\.') else t + '|' + t + '\\\\.0',

  // Markers (`ǂ<n>ǂ`) in compiled text -> their values.
  subst(s, m)::
    local parts = std.split(s, 'ǂ');
    if std.length(parts) == 1 then s
    else std.join('', [if i % 2 == 1 then m['ǂ' + parts[i] + 'ǂ'] else parts[i] for i in std.range(0, std.length(parts) - 1)]),
  deep(x, m)::
    if std.isString(x) then self.subst(x, m)
    else if std.isArray(x) then [self.deep(e, m) for e in x]
    else if std.isObject(x) then { [k]: $.deep(x[k], m) for k in std.objectFields(x) }
    else x,

  // A compiled rule, its markers substituted; its expression stays segments until grouped.
  // (Jsonnet re-evaluates an object's field on every access; values bound to locals are
  // evaluated once, so everything read repeatedly is a local here and below.)
  rule(r, m)::
    local seg(s) =
      if std.isString(s) then $.subst(s, m)
      else
        local leaf = $.subst(s.leaf, m), name = if s.name == null then null else $.subst(s.name, m);
        { leaf: leaf, name: name };
    local segs = [seg(s) for s in r.expr];
    { [k]: $.deep(r[k], m) for k in std.objectFields(r) if k != 'expr' } + { segs: segs },

  // render.prometheus._signal_rules / absent_rules: what `_config` adds to an alert.
  finish(c, rule, hold, keep)::
    if !std.objectHas(rule, 'alert') then rule
    else rule {
      labels: c.alert_labels + rule.labels,
      annotations: rule.annotations + (if c.runbook_base_url != '' then
                                         { runbook_url: c.runbook_base_url + '#' + rule.labels.signal } else {}),
    } + (if hold > 0 then { 'for': $.formatDuration(hold) } else {})
      + (if keep > 0 then { keep_firing_for: $.formatDuration(keep) } else {}),

  // render.prometheus.hoist_shared: the leaves several rules of a group read, in order of
  // first appearance, each recorded once unless its name is taken.
  shared(rules)::
    local refs = std.flattenArrays([[s for s in r.segs if std.isObject(s)] for r in rules]);
    // Leaves read at least twice: adjacent once sorted.
    local sorted = std.sort([s.leaf for s in refs]);
    local twice = { [t]: true for t in std.set([sorted[i] for i in std.range(1, std.length(sorted) - 1)
                                                if sorted[i] == sorted[i - 1]]) };
    local candidates = [s for s in refs if s.name != null && std.objectHas(twice, s.leaf)];
    local firsts = std.foldl(function(acc, s) if std.member([a.leaf for a in acc], s.leaf) then acc else acc + [s],
                             candidates, []);
    local taken = [r.record for r in rules if std.objectHas(r, 'record')];
    std.foldl(function(st, s)
                if std.member(st.taken, s.name) then st
                else local taken = st.taken + [s.name], out = st.out + [s]; { taken: taken, out: out },
              firsts, { taken: taken, out: [] }).out,
  hoisted(rules)::
    local sh = $.shared(rules);
    local names = { [s.leaf]: s.name for s in sh };
    [{ record: s.name, expr: s.leaf } for s in sh]
    + [{ [k]: r[k] for k in std.objectFields(r) if k != 'segs' }
       + { expr: std.join('', [if std.isString(s) then s else if std.objectHas(names, s.leaf) then names[s.leaf] else s.leaf
                              for s in r.segs]) }
       for r in rules],
  hoistedSize(rules):: std.length(rules) + std.length($.shared(rules)),

  // render.prometheus._pack: consecutive units into groups of at most `limit` rules.
  pack(units, limit, where)::
    local st = std.foldl(function(st, u)
      local size = $.hoistedSize(u);
      assert size <= limit : 'cilium-day2 mixin: max_rules_per_group %d is below the %d rules of %s that must share one group' % [limit, size, where];
      local joined = st.current + u;
      if std.length(st.current) > 0 && $.hoistedSize(joined) > limit
      then local chunks = st.chunks + [st.current]; { chunks: chunks, current: u }
      else local chunks = st.chunks; { chunks: chunks, current: joined },
      units, { chunks: [], current: [] });
    st.chunks + (if std.length(st.current) > 0 then [st.current] else []),

  // catalog.model.Settings.rule_interval: the tier of the largest time to fire (window plus
  // `for`) not above the signal's, capped at its `for` and `keep_firing_for`, at least the
  // scrape interval.
  interval(c, window, hold, keep)::
    local tiers = std.sort([{ at: $.seconds(k), iv: $.seconds(c.rule_intervals[k]) } for k in std.objectFields(c.rule_intervals)],
                           function(t) t.at);
    local fit = [t.iv for t in tiers if window + hold >= t.at];
    local base = if std.length(fit) > 0 then fit[std.length(fit) - 1] else tiers[0].iv;
    local capped = std.foldl(function(iv, cap) if cap > 0 && cap < iv then cap else iv, [hold, keep], base);
    std.max(capped, $.seconds(c.scrape_interval)),

  // render.prometheus.prometheus_groups (without shards): per area, one group per pace.
  groups(c, compiled, m)::
    local on(id) = c.signals[id].enabled;
    local hold(id) = $.seconds(c.signals[id]['for']);
    local keep(id) = $.seconds(c.signals[id].keep_firing_for);
    local pace(id) = $.interval(c, $.seconds(c.signals[id].window), hold(id), keep(id));
    local unit(id) = [$.finish(c, $.rule(r, m), hold(id), keep(id)) for r in compiled.signals[id].rules];
    local ups = [id for a in compiled.areas for id in a.signals if on(id) && compiled.signals[id].up_target != null];
    local targets = if std.length(ups) == 0 then [] else [{
      id: 'targets',
      every: std.foldl(std.min, [pace(id) for id in ups], pace(ups[0])),
      units: [[$.rule(r, m) for r in compiled.targets.records]
              + [$.finish(c, $.rule(r, m), hold(r.labels.signal), 0)
                 for r in compiled.targets.alerts if std.member(ups, r.labels.signal)]],
    }];
    local areas = std.flattenArrays([
      local ids = [id for id in a.signals if on(id)];
      [{ id: a.id, every: p, units: [unit(id) for id in ids if pace(id) == p] } for p in std.set([pace(id) for id in ids])]
      for a in compiled.areas
    ]);
    std.flattenArrays([
      local every = $.formatDuration(a.every);
      local chunks = $.pack(a.units, c.max_rules_per_group, 'area %s (every %s)' % [a.id, every]);
      [{
        name: 'cilium-day2-' + std.strReplace(a.id, '_', '-') + '-' + every
              + (if std.length(chunks) > 1 then '-%d' % (i + 1) else ''),
        interval: every,
        rules: $.hoisted(chunks[i]),
      } for i in std.range(0, std.length(chunks) - 1)]
      for a in areas + targets if std.length(a.units) > 0
    ]),

  // render.grafana.threshold_steps, clean, step_above
  clean(v):: std.parseJson(g('%.12g', v)),
  stepAbove(t)::
    if t == 0 then 1e-6
    else
      local e0 = std.floor(std.log(std.abs(t)) / std.log(10));
      local e = if std.pow(10, e0 + 1) <= std.abs(t) then e0 + 1 else if std.pow(10, e0) > std.abs(t) then e0 - 1 else e0;
      self.clean(t + std.pow(10, e - 3)),
  local colours = { warning: 'orange', critical: 'red' },
  steps(sc, comparison)::
    local th = [{ sev: s, v: sc[s] } for s in ['warning', 'critical'] if std.objectHas(sc, s) && sc[s] != null];
    if comparison == '>' then
      [{ color: 'green', value: null }] + [{ color: colours[t.sev], value: $.stepAbove(t.v) } for t in th]
    else
      local o = std.sort(th, function(t) t.v);
      [{ color: colours[o[0].sev], value: null }]
      + [{ color: if i + 1 < std.length(o) then colours[o[i + 1].sev] else 'green', value: $.clean(o[i].v) }
         for i in std.range(0, std.length(o) - 1)],

  // render.grafana.grafana_panels: the layout of the enabled signals' panels.
  dashboard(c, compiled, m)::
    local on(id) = c.signals[id].enabled;
    local layout = std.foldl(function(st, a)
      local row = $.deep(a.row, m) { id: st.pid, gridPos: { h: 1, w: 24, x: 0, y: st.y } };
      local items = [it for it in a.items if it.signal == null || on(it.signal)];
      local placed = std.foldl(function(p, it)
        local panel = $.deep(it.panel, m) {
          id: p.pid,
          gridPos: { h: 8, w: 8, x: p.x, y: p.y },
          fieldConfig+: { defaults+: { thresholds+: {
            steps: if it.signal == null then super.steps
                   else $.steps(c.signals[it.signal], compiled.signals[it.signal].comparison),
          } } },
        };
        local x = p.x + 8, panels = p.panels + [panel], pid = p.pid + 1, y = if x >= 24 then p.y + 8 else p.y;
        { panels: panels, pid: pid, x: if x >= 24 then 0 else x, y: y },
        items, { panels: [], pid: st.pid + 1, x: 0, y: st.y + 1 });
      local panels = st.panels + [row] + placed.panels, pid = placed.pid, y = placed.y + (if placed.x > 0 then 8 else 0);
      { panels: panels, pid: pid, y: y },
      compiled.areas, { panels: [], pid: 1, y: 0 });
    $.deep(compiled.dashboard, m) { panels: layout.panels },
}
