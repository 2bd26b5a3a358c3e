// SPDX-License-Identifier: MIT
//
// shmtrack's memory-infra page. Reads the report JSON (`shmtrack report --format json`, DESIGN §5)
// embedded in #shmtrack-data, or, when served live, fetched from /api/dumps, and draws: the
// per-process overview, the shared objects table with per-holder attribution, a timeline of owned
// memory across dumps, a diff between two dumps and a treemap. Hand-written and dependency-free
// so the page works from one file with no network. Every number is shown formatted, with the
// exact byte count in its tooltip and in a data-bytes attribute (the browser tests read those).
(function () {
    'use strict';

    var state = {
        report: { dumps: [] },
        // #shmtrack-extra / api/extra: {mapped: dump id -> pid -> key -> bytes,
        //                               allocators: dump id -> pid -> allocator -> bytes}
        extra: {},
        config: {},
        dumpIndex: 0,
        sortKey: 'size',
        sortDesc: true,
        filter: '',
        selectedKey: null,
    };

    // ---- small helpers ------------------------------------------------------------------------

    function $(id) { return document.getElementById(id); }

    function el(tag, attrs, children) {
        var e = document.createElement(tag);
        if (attrs) {
            Object.keys(attrs).forEach(function (k) {
                if (k === 'text') e.textContent = attrs[k];
                else if (k === 'className') e.className = attrs[k];
                else if (k === 'onclick') e.addEventListener('click', attrs[k]);
                else e.setAttribute(k, attrs[k]);
            });
        }
        (children || []).forEach(function (c) {
            if (c === null || c === undefined) return;
            e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
        });
        return e;
    }

    var SVGNS = 'http://www.w3.org/2000/svg';
    function svg(tag, attrs, children) {
        var e = document.createElementNS(SVGNS, tag);
        Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
        (children || []).forEach(function (c) { if (c) e.appendChild(c); });
        return e;
    }
    function svgTitle(text) { var t = svg('title'); t.textContent = text; return t; }

    var UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    function fmtBytes(n) {
        if (n === null || n === undefined) return '\u2013';
        var neg = n < 0, v = Math.abs(n), u = 0;
        while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++; }
        var s = u === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2);
        return (neg ? '\u2212' : '') + s + ' ' + UNITS[u];
    }
    function fmtExact(n) {
        return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',') + ' bytes';
    }
    function fmtDelta(n) { return (n > 0 ? '+' : '') + fmtBytes(n); }

    // A table cell holding a byte count: formatted text, exact count in the tooltip and data-bytes.
    function bytesCell(n, cls) {
        var td = el('td', { className: 'num' + (cls ? ' ' + cls : '') });
        if (n === null || n === undefined) { td.textContent = '\u2013'; return td; }
        td.textContent = fmtBytes(n);
        td.setAttribute('title', fmtExact(n));
        td.setAttribute('data-bytes', String(n));
        return td;
    }
    function deltaCell(n) {
        var td = bytesCell(n, n > 0 ? 'grow' : n < 0 ? 'shrink' : '');
        td.textContent = fmtDelta(n);
        return td;
    }

    function num(v) { return typeof v === 'number' ? v : 0; }

    function dumps() { return state.report.dumps || []; }
    function currentDump() { return dumps()[state.dumpIndex] || null; }

    function dumpLabel(d, i) {
        var first = dumps()[0];
        var t = d.ts !== undefined && first && first.ts !== undefined
            ? ' +' + ((d.ts - first.ts) / 1e6).toFixed(3) + ' s' : '';
        return '#' + (i + 1) + ' ' + d.id + t + (d.partial ? ' (partial)' : '');
    }

    function procMap(d) {
        var m = {};
        (d.processes || []).forEach(function (p) { m[p.pid] = p; });
        return m;
    }
    function procName(d, pid) {
        var p = procMap(d)[pid];
        return p && p.name ? p.name : 'pid ' + pid;
    }
    // The report's owner_pid is the holder charged most; 0 when nobody is charged anything.
    function ownerText(d, o) {
        if (!o.owner_pid) return (o.holders || []).length ? 'none' : 'unattributed';
        return procName(d, o.owner_pid) + ' (' + o.owner_pid + ')';
    }

    // Mapped bytes of a holder: in the report when it carries them, else in the page's extras.
    function mappedSize(d, o, h) {
        if (typeof h.mapped_size === 'number') return h.mapped_size;
        var x = state.extra.mapped && state.extra.mapped[d.id];
        var p = x && x[h.pid];
        return p && typeof p[o.key] === 'number' ? p[o.key] : null;
    }

    // ---- alerts: partial dumps, warnings and problems, shown first ---------------------------

    function renderAlerts() {
        var box = $('alerts');
        box.textContent = '';
        var d = currentDump();
        if (!d) {
            box.appendChild(el('div', { className: 'alert warning', text: 'This trace has no dumps.' }));
            return;
        }
        if (d.partial) {
            box.appendChild(el('div', { className: 'alert partial', id: 'partial-alert',
                text: 'Partial dump: some processes could not report; their memory is missing ' +
                      'from the numbers below.' }));
        }
        var problems = d.problems || [];
        if (problems.length) {
            var ul = el('ul');
            problems.forEach(function (p) {
                var who = p.pid ? 'pid ' + p.pid + ': ' : '';
                var what = p.error !== undefined ? p.error : p.err !== undefined ? p.err : '';
                ul.appendChild(el('li', { text: who + (p.path || '') + (what !== '' ? ': ' + what : '') }));
            });
            box.appendChild(el('div', { className: 'alert warning', id: 'problems-alert' },
                [el('strong', { text: problems.length + ' problem(s) while reading this dump' }), ul]));
        }
        var warnings = d.warnings || [];
        if (warnings.length) {
            var wl = el('ul');
            warnings.forEach(function (w) { wl.appendChild(el('li', { text: String(w) })); });
            box.appendChild(el('div', { className: 'alert warning', id: 'warnings-alert' },
                [el('strong', { text: warnings.length + ' warning(s)' }), wl]));
        }
        var others = dumps().filter(function (x) { return x.partial && x !== d; }).length;
        if (others) {
            box.appendChild(el('div', { className: 'alert warning',
                text: others + ' other dump(s) of this trace are partial (marked in the dump selector).' }));
        }
    }

    // ---- overview -----------------------------------------------------------------------------

    var PROC_COLS = [
        ['rss_bytes', 'resident'], ['pss_bytes', 'PSS'], ['private_footprint_bytes', 'private footprint'],
        ['shared_mapped_bytes', 'shared mapped'], ['shared_owned_bytes', 'shared owned'],
    ];

    function renderOverview() {
        var t = $('overview-table');
        t.textContent = '';
        var d = currentDump();
        document.querySelectorAll('.dump-label').forEach(function (x) {
            x.textContent = d ? dumpLabel(d, state.dumpIndex) : '';
        });
        if (!d) return;
        // Other allocators of the dump (malloc, ...), as extra columns: their effective sizes.
        var allocs = (state.extra.allocators || {})[d.id] || {};
        var allocNames = [];
        Object.keys(allocs).forEach(function (pid) {
            Object.keys(allocs[pid]).forEach(function (n) { if (allocNames.indexOf(n) < 0) allocNames.push(n); });
        });
        allocNames.sort();
        var head = el('tr', null, [el('th', { text: 'process' }), el('th', { className: 'num', text: 'pid' })]);
        PROC_COLS.forEach(function (c) { head.appendChild(el('th', { className: 'num', text: c[1] })); });
        allocNames.forEach(function (n) {
            head.appendChild(el('th', { className: 'num alloc', title: 'effective size of ' + n, text: n }));
        });
        t.appendChild(el('thead', null, [head]));
        var body = el('tbody');
        var total = {};
        var procs = (d.processes || []).slice().sort(function (a, b) {
            return num(b.shared_owned_bytes) - num(a.shared_owned_bytes) || a.pid - b.pid;
        });
        procs.forEach(function (p) {
            var tr = el('tr', { 'data-pid': String(p.pid) },
                [el('td', { className: 'name', text: p.name || '?' }), el('td', { className: 'num', text: String(p.pid) })]);
            PROC_COLS.forEach(function (c) {
                tr.appendChild(bytesCell(p[c[0]], c[0]));
                total[c[0]] = num(total[c[0]]) + num(p[c[0]]);
            });
            allocNames.forEach(function (n) {
                var v = (allocs[p.pid] || {})[n];
                var td = bytesCell(v, 'alloc');
                td.setAttribute('data-allocator', n);
                tr.appendChild(td);
                total['alloc:' + n] = num(total['alloc:' + n]) + num(v);
            });
            body.appendChild(tr);
        });
        var tr = el('tr', { className: 'total' }, [el('td', { text: 'total' }), el('td', { className: 'num', text: String(procs.length) })]);
        PROC_COLS.forEach(function (c) { tr.appendChild(bytesCell(num(total[c[0]]), c[0])); });
        allocNames.forEach(function (n) { tr.appendChild(bytesCell(num(total['alloc:' + n]), 'alloc')); });
        body.appendChild(tr);
        t.appendChild(body);

        var tot = d.totals || {};
        var line = $('totals-line');
        line.textContent = '';
        [['shared_resident_unique', 'shared resident (each object once)'], ['attributed', 'attributed to processes'],
         ['unattributed', 'unattributed (no live holder)']].forEach(function (x, i) {
            if (i) line.appendChild(document.createTextNode(' \u00b7 '));
            line.appendChild(document.createTextNode(x[1] + ': '));
            var b = el('strong', { id: 'total-' + x[0], 'data-bytes': String(num(tot[x[0]])),
                                   title: fmtExact(num(tot[x[0]])), text: fmtBytes(num(tot[x[0]])) });
            if (x[0] === 'unattributed' && num(tot[x[0]]) > 0) b.className = 'grow';
            line.appendChild(b);
        });
    }

    // ---- shared objects -----------------------------------------------------------------------

    var OBJ_COLS = [
        ['key', 'key', false], ['kind', 'kind', false], ['name', 'name', false], ['size', 'size', true],
        ['virtual_size', 'virtual size', true], ['swapped_size', 'swapped', true], ['owner', 'owner', false],
        ['holders', 'holders', true],
    ];

    function objValue(d, o, key) {
        if (key === 'owner') return ownerText(d, o);
        if (key === 'holders') return (o.holders || []).length;
        return o[key];
    }

    function renderObjects() {
        var t = $('objects-table');
        t.textContent = '';
        var d = currentDump();
        if (!d) return;
        var head = el('tr');
        OBJ_COLS.forEach(function (c) {
            var cls = 'sortable' + (c[2] ? ' num' : '');
            if (state.sortKey === c[0]) cls += state.sortDesc ? ' sorted-desc' : ' sorted-asc';
            head.appendChild(el('th', { className: cls, 'data-col': c[0], text: c[1], onclick: function () {
                if (state.sortKey === c[0]) state.sortDesc = !state.sortDesc;
                else { state.sortKey = c[0]; state.sortDesc = c[2]; }
                renderObjects();
            } }));
        });
        t.appendChild(el('thead', null, [head]));
        var f = state.filter.toLowerCase();
        var objs = (d.objects || []).filter(function (o) {
            if (!f) return true;
            return [o.key, o.kind, o.name, ownerText(d, o)].some(function (s) {
                return String(s || '').toLowerCase().indexOf(f) >= 0;
            });
        });
        var k = state.sortKey, sign = state.sortDesc ? -1 : 1;
        objs.sort(function (a, b) {
            var x = objValue(d, a, k), y = objValue(d, b, k);
            var c = typeof x === 'number' && typeof y === 'number' ? x - y
                : String(x === undefined || x === null ? '' : x).localeCompare(String(y === undefined || y === null ? '' : y));
            return sign * c || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
        });
        var body = el('tbody');
        objs.forEach(function (o) {
            var tr = el('tr', { className: 'clickable' + (o.key === state.selectedKey ? ' selected' : ''),
                                'data-key': o.key, onclick: function () { selectObject(o.key); } },
                [el('td', { className: 'key', text: o.key }), el('td', { text: o.kind || '' }),
                 el('td', { className: 'name', title: o.name || '', text: o.name || '' }),
                 bytesCell(o.size, 'size'), bytesCell(o.virtual_size, 'virtual_size'),
                 bytesCell(o.swapped_size, 'swapped_size'), el('td', { className: 'owner', text: ownerText(d, o) }),
                 el('td', { className: 'num holders', text: String((o.holders || []).length) })]);
            body.appendChild(tr);
        });
        t.appendChild(body);
        $('object-count').textContent = objs.length + ' of ' + (d.objects || []).length + ' objects';
        renderDetail();
    }

    function selectObject(key) {
        state.selectedKey = key;
        renderObjects();
    }

    function holderDesc(d, h) {
        return procName(d, h.pid) + ' (pid ' + h.pid + ', importance ' + h.importance + ')';
    }

    // One sentence that says why the object's bytes are charged where they are.
    function explain(d, o) {
        var holders = o.holders || [];
        var charged = holders.filter(function (h) { return num(h.effective_size) > 0; });
        var zero = holders.length - charged.length;
        var sum = holders.reduce(function (s, h) { return s + num(h.effective_size); }, 0);
        var parts = [];
        if (!holders.length) {
            return 'No live process holds this object: its ' + fmtBytes(num(o.size)) +
                ' are counted as unattributed.';
        }
        if (charged.length === 1 && o.owner_pid && charged[0].pid === o.owner_pid) {
            parts.push('owned by ' + holderDesc(d, charged[0]));
        } else if (charged.length === 1) {
            parts.push('charged to ' + holderDesc(d, charged[0]));
        } else if (charged.length > 1) {
            var eq = charged.every(function (h) { return h.importance === charged[0].importance; });
            parts.push((eq ? 'split between ' : 'shared by ') + charged.length + ' holders at importance ' +
                charged.map(function (h) { return h.importance; }).filter(function (v, i, a) { return a.indexOf(v) === i; }).join('/') +
                ': ' + charged.map(function (h) { return procName(d, h.pid) + ' (pid ' + h.pid + ') ' + fmtBytes(num(h.effective_size)); }).join(', '));
        } else {
            parts.push('no holder is charged for it');
        }
        if (zero > 0) parts.push(zero + (charged.length ? ' other' : '') + ' holder' + (zero > 1 ? 's' : '') + ' charged 0');
        var s = parts.join('; ');
        if (sum < num(o.size)) s += '; ' + fmtBytes(num(o.size) - sum) + ' unattributed';
        return s.charAt(0).toUpperCase() + s.slice(1) + '.';
    }

    function renderDetail() {
        var box = $('object-detail');
        var d = currentDump();
        var o = d && (d.objects || []).filter(function (x) { return x.key === state.selectedKey; })[0];
        box.textContent = '';
        if (!o) { box.hidden = true; return; }
        box.hidden = false;
        box.setAttribute('data-key', o.key);
        box.appendChild(el('h3', { text: o.key + (o.name ? '  ' + o.name : '') }));
        box.appendChild(el('p', { className: 'explain', id: 'object-explain', text: explain(d, o) }));
        var t = el('table', { className: 'data', id: 'holders-table' });
        t.appendChild(el('thead', null, [el('tr', null, [
            el('th', { text: 'holder' }), el('th', { className: 'num', text: 'pid' }),
            el('th', { className: 'num', text: 'importance' }), el('th', { className: 'num', text: 'mapped' }),
            el('th', { className: 'num', text: 'effective size' })])]));
        var body = el('tbody');
        (o.holders || []).slice().sort(function (a, b) {
            return num(b.effective_size) - num(a.effective_size) || b.importance - a.importance || a.pid - b.pid;
        }).forEach(function (h) {
            body.appendChild(el('tr', { 'data-pid': String(h.pid) }, [
                el('td', { className: 'name', text: procName(d, h.pid) }), el('td', { className: 'num', text: String(h.pid) }),
                el('td', { className: 'num importance', text: String(h.importance) }),
                bytesCell(mappedSize(d, o, h), 'mapped_size'), bytesCell(h.effective_size, 'effective_size')]));
        });
        t.appendChild(body);
        if ((o.holders || []).length) box.appendChild(t);
    }

    // ---- colours ------------------------------------------------------------------------------

    var PALETTE = ['#3584e4', '#e66100', '#26a269', '#c061cb', '#f5c211', '#1c71d8', '#a51d2d',
                   '#63452c', '#2ec27e', '#9141ac', '#ff7800', '#5e5c64'];
    var colorOf = {};
    function pidColor(pid) {
        if (!(pid in colorOf)) colorOf[pid] = PALETTE[Object.keys(colorOf).length % PALETTE.length];
        return colorOf[pid];
    }
    var UNATTRIBUTED_COLOR = '#9a9996';

    // ---- timeline: stacked bars of owned memory per process, one per dump ---------------------

    function renderTimeline() {
        var box = $('timeline-chart');
        box.textContent = '';
        var ds = dumps();
        if (!ds.length) return;
        var pids = [], names = {};
        ds.forEach(function (d) {
            (d.processes || []).forEach(function (p) {
                if (pids.indexOf(p.pid) < 0) pids.push(p.pid);
                names[p.pid] = p.name || 'pid ' + p.pid;
            });
        });
        pids.sort(function (a, b) { return a - b; });
        var max = 1;
        ds.forEach(function (d) {
            var s = (d.processes || []).reduce(function (a, p) { return a + num(p.shared_owned_bytes); }, 0) +
                num((d.totals || {}).unattributed);
            if (s > max) max = s;
        });
        var W = Math.max(480, Math.min(1100, ds.length * 48 + 90)), H = 220, L = 70, B = 24, T = 8;
        var bw = Math.max(4, Math.min(40, (W - L - 10) / ds.length - 4));
        var root = svg('svg', { width: W, height: H, id: 'timeline-svg', role: 'img' });
        [0, 0.5, 1].forEach(function (f) {
            var y = T + (H - T - B) * (1 - f);
            root.appendChild(svg('line', { x1: L - 4, x2: W, y1: y, y2: y, stroke: '#ddd' }));
            var lbl = svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' });
            lbl.textContent = fmtBytes(Math.round(max * f));
            root.appendChild(lbl);
        });
        ds.forEach(function (d, i) {
            var x = L + i * ((W - L - 10) / ds.length) + 2, y = H - B;
            var g = svg('g', { class: 'bar' + (i === state.dumpIndex ? ' current-bar' : ''), 'data-index': String(i),
                               style: 'cursor:pointer' });
            var layers = pids.map(function (pid) {
                var p = procMap(d)[pid];
                return { pid: pid, v: p ? num(p.shared_owned_bytes) : 0, c: pidColor(pid), n: names[pid] };
            });
            layers.push({ pid: 0, v: num((d.totals || {}).unattributed), c: UNATTRIBUTED_COLOR, n: 'unattributed' });
            layers.forEach(function (l) {
                if (!l.v) return;
                var h = (H - T - B) * l.v / max;
                y -= h;
                g.appendChild(svg('rect', { x: x, y: y, width: bw, height: Math.max(h, 0.5), fill: l.c },
                    [svgTitle(dumpLabel(d, i) + '\n' + l.n + (l.pid ? ' (pid ' + l.pid + ')' : '') + ': ' +
                              fmtBytes(l.v) + ' (' + fmtExact(l.v) + ')')]));
            });
            if (i === state.dumpIndex)
                g.appendChild(svg('rect', { x: x - 1, y: T, width: bw + 2, height: H - T - B, fill: 'none', class: 'current' }));
            if (d.partial) {
                var warn = svg('text', { x: x + bw / 2, y: H - B + 12, 'text-anchor': 'middle', fill: '#c01c28' });
                warn.textContent = '!';
                g.appendChild(warn);
            }
            if (ds.length <= 30 || i % Math.ceil(ds.length / 30) === 0 || i === ds.length - 1) {
                var lbl = svg('text', { x: x + bw / 2, y: H - 2, 'text-anchor': 'middle' });
                lbl.textContent = String(i + 1);
                g.appendChild(lbl);
            }
            g.addEventListener('click', function () { selectDump(i); });
            root.appendChild(g);
        });
        box.appendChild(root);
        var legend = el('div', { className: 'legend' });
        pids.forEach(function (pid) {
            legend.appendChild(el('span', { style: '--c:' + pidColor(pid), text: names[pid] + ' (' + pid + ')' }));
        });
        legend.appendChild(el('span', { style: '--c:' + UNATTRIBUTED_COLOR, text: 'unattributed' }));
        box.appendChild(legend);
    }

    // ---- diff between two dumps --------------------------------------------------------------

    function fillDumpSelect(sel, value) {
        sel.textContent = '';
        dumps().forEach(function (d, i) {
            var opt = el('option', { value: String(i), text: dumpLabel(d, i) });
            sel.appendChild(opt);
        });
        if (value !== undefined) sel.value = String(value);
    }

    function renderDiff() {
        var box = $('diff-result');
        box.textContent = '';
        var ds = dumps();
        var a = ds[+$('diff-a').value], b = ds[+$('diff-b').value];
        if (!a || !b) return;
        box.appendChild(el('p', { className: 'muted', text: 'From ' + dumpLabel(a, ds.indexOf(a)) + ' to ' +
            dumpLabel(b, ds.indexOf(b)) + '. Rows that grew are highlighted; largest growth first.' }));

        var pa = procMap(a), pb = procMap(b), pids = [];
        Object.keys(pa).concat(Object.keys(pb)).forEach(function (k) { if (pids.indexOf(+k) < 0) pids.push(+k); });
        var prow = pids.map(function (pid) {
            var x = pa[pid] || {}, y = pb[pid] || {};
            return { pid: pid, name: y.name || x.name || 'pid ' + pid, a: x, b: y,
                     d: num(y.shared_owned_bytes) - num(x.shared_owned_bytes),
                     drss: num(y.rss_bytes) - num(x.rss_bytes),
                     status: !pa[pid] ? 'new' : !pb[pid] ? 'gone' : '' };
        }).sort(function (x, y) { return y.d - x.d || x.pid - y.pid; });
        var pt = el('table', { className: 'data', id: 'diff-processes' });
        pt.appendChild(el('thead', null, [el('tr', null, ['process', 'pid', 'owned before', 'owned after',
            '\u0394 owned', '\u0394 resident', ''].map(function (h, i) {
            return el('th', { className: i > 0 && i < 6 ? 'num' : '', text: h });
        }))]));
        var pbody = el('tbody');
        prow.forEach(function (r) {
            pbody.appendChild(el('tr', { 'data-pid': String(r.pid), className: r.d > 0 ? 'grew' : '' }, [
                el('td', { className: 'name', text: r.name }), el('td', { className: 'num', text: String(r.pid) }),
                bytesCell(num(r.a.shared_owned_bytes)), bytesCell(num(r.b.shared_owned_bytes)),
                deltaCell(r.d), deltaCell(r.drss), el('td', { text: r.status })]));
        });
        pt.appendChild(pbody);
        box.appendChild(pt);

        var oa = {}, ob = {};
        (a.objects || []).forEach(function (o) { oa[o.key] = o; });
        (b.objects || []).forEach(function (o) { ob[o.key] = o; });
        var keys = Object.keys(oa);
        Object.keys(ob).forEach(function (k) { if (!(k in oa)) keys.push(k); });
        var orow = keys.map(function (k) {
            var x = oa[k], y = ob[k];
            var o = y || x;
            var d = num(y && y.size) - num(x && x.size);
            return { key: k, o: o, x: x, y: y, d: d,
                     status: !x ? 'new' : !y ? 'gone' : d > 0 ? 'grew' : d < 0 ? 'shrank' : 'same' };
        }).sort(function (x, y) { return y.d - x.d || (x.key < y.key ? -1 : 1); });
        var ot = el('table', { className: 'data', id: 'diff-objects' });
        ot.appendChild(el('thead', null, [el('tr', null, ['object', 'name', 'owner', 'size before', 'size after',
            '\u0394 size', 'status'].map(function (h, i) {
            return el('th', { className: i > 2 && i < 6 ? 'num' : '', text: h });
        }))]));
        var obody = el('tbody');
        var grown = 0;
        orow.forEach(function (r) {
            if (r.d > 0) grown++;
            obody.appendChild(el('tr', { 'data-key': r.key, className: r.status === 'new' && r.d > 0 ? 'added' : r.d > 0 ? 'grew' : '' }, [
                el('td', { className: 'key', text: r.key }), el('td', { className: 'name', text: r.o.name || '' }),
                el('td', { text: ownerText(r.y ? b : a, r.o) }),
                bytesCell(r.x ? num(r.x.size) : null), bytesCell(r.y ? num(r.y.size) : null),
                deltaCell(r.d), el('td', { className: 'status', text: r.status })]));
        });
        ot.appendChild(obody);
        var ua = num((a.totals || {}).unattributed), ub = num((b.totals || {}).unattributed);
        var sum = el('p', { id: 'diff-summary' });
        sum.appendChild(document.createTextNode(grown + ' object(s) grew; shared resident total '));
        var tot = num((b.totals || {}).shared_resident_unique) - num((a.totals || {}).shared_resident_unique);
        sum.appendChild(el('span', { className: tot > 0 ? 'grow' : tot < 0 ? 'shrink' : '', title: fmtExact(tot),
                                     'data-bytes': String(tot), text: fmtDelta(tot) }));
        sum.appendChild(document.createTextNode('; unattributed ' + fmtDelta(ub - ua) + '.'));
        box.appendChild(sum);
        box.appendChild(ot);
    }

    // ---- treemap (squarified) -----------------------------------------------------------------

    // Lays out items (each {v}) in rect {x,y,w,h}, setting item.r; Bruls et al.'s squarify.
    function squarify(items, rect) {
        items = items.filter(function (i) { return i.v > 0; }).sort(function (a, b) { return b.v - a.v; });
        var total = items.reduce(function (s, i) { return s + i.v; }, 0);
        if (!total) return;
        var scale = rect.w * rect.h / total;
        var r = { x: rect.x, y: rect.y, w: rect.w, h: rect.h };
        var row = [], i = 0;
        function worst(rw, side) {
            var s = 0, mx = 0, mn = Infinity;
            rw.forEach(function (it) { var a = it.v * scale; s += a; mx = Math.max(mx, a); mn = Math.min(mn, a); });
            return Math.max(side * side * mx / (s * s), (s * s) / (side * side * mn));
        }
        function layoutRow(rw) {
            var s = rw.reduce(function (a, it) { return a + it.v * scale; }, 0);
            var horiz = r.w >= r.h, side = horiz ? r.h : r.w, thick = s / side, off = 0;
            rw.forEach(function (it) {
                var len = it.v * scale / thick;
                it.r = horiz ? { x: r.x, y: r.y + off, w: thick, h: len } : { x: r.x + off, y: r.y, w: len, h: thick };
                off += len;
            });
            if (horiz) { r.x += thick; r.w -= thick; } else { r.y += thick; r.h -= thick; }
        }
        while (i < items.length) {
            var side = Math.min(r.w, r.h);
            var next = row.concat([items[i]]);
            if (!row.length || worst(next, side) <= worst(row, side)) { row = next; i++; }
            else { layoutRow(row); row = []; }
        }
        if (row.length) layoutRow(row);
    }

    function renderTreemap() {
        var box = $('treemap-chart');
        box.textContent = '';
        var d = currentDump();
        if (!d) return;
        var W = Math.min(1100, Math.max(480, (box.clientWidth || 900))), H = 340;
        var groups = {};
        (d.objects || []).forEach(function (o) {
            (o.holders || []).forEach(function (h) {
                if (!num(h.effective_size)) return;
                var g = groups[h.pid] = groups[h.pid] || { pid: h.pid, v: 0, kids: [] };
                g.v += num(h.effective_size);
                g.kids.push({ v: num(h.effective_size), o: o });
            });
        });
        var items = Object.keys(groups).map(function (k) { return groups[k]; });
        var un = num((d.totals || {}).unattributed);
        if (un) {
            items.push({ pid: 0, v: un, kids: (d.objects || []).filter(function (o) { return !(o.holders || []).length; })
                .map(function (o) { return { v: num(o.size), o: o }; }) });
        }
        var root = svg('svg', { width: W, height: H, id: 'treemap-svg', role: 'img' });
        if (!items.length) {
            var t = svg('text', { x: 10, y: 20 });
            t.textContent = 'No owned shared memory in this dump.';
            root.appendChild(t);
            box.appendChild(root);
            return;
        }
        squarify(items, { x: 0, y: 0, w: W, h: H });
        items.forEach(function (g) {
            if (!g.r) return;
            var name = g.pid ? procName(d, g.pid) + ' (' + g.pid + ')' : 'unattributed';
            var color = g.pid ? pidColor(g.pid) : UNATTRIBUTED_COLOR;
            var pad = 2, top = g.r.h > 30 ? 14 : 0;
            root.appendChild(svg('rect', { x: g.r.x, y: g.r.y, width: g.r.w, height: g.r.h, fill: color,
                                           stroke: '#fff', 'stroke-width': 2, 'data-pid': String(g.pid) },
                [svgTitle(name + ': ' + fmtBytes(g.v) + ' (' + fmtExact(g.v) + ')')]));
            var inner = { x: g.r.x + pad, y: g.r.y + pad + top, w: Math.max(0, g.r.w - 2 * pad), h: Math.max(0, g.r.h - 2 * pad - top) };
            squarify(g.kids, inner);
            g.kids.forEach(function (k) {
                if (!k.r) return;
                var cell = svg('rect', { class: 'cell', x: k.r.x, y: k.r.y, width: Math.max(0, k.r.w - 1), height: Math.max(0, k.r.h - 1),
                                         fill: color, 'fill-opacity': 0.55, stroke: '#fff', 'data-key': k.o.key,
                                         style: 'cursor:pointer' },
                    [svgTitle(name + '\n' + k.o.key + (k.o.name ? ' ' + k.o.name : '') + ': ' + fmtBytes(k.v) + ' (' + fmtExact(k.v) + ')')]);
                cell.addEventListener('click', function () {
                    selectObject(k.o.key);
                    $('objects').scrollIntoView();
                });
                root.appendChild(cell);
                if (k.r.w > 70 && k.r.h > 16) {
                    var lt = svg('text', { x: k.r.x + 3, y: k.r.y + 12, 'pointer-events': 'none' });
                    lt.textContent = (k.o.name || k.o.key).slice(0, Math.floor(k.r.w / 7));
                    root.appendChild(lt);
                }
            });
            if (top && g.r.w > 40) {
                var label = svg('text', { x: g.r.x + 4, y: g.r.y + 12, 'font-weight': 'bold', 'pointer-events': 'none' });
                label.textContent = (name + ' ' + fmtBytes(g.v)).slice(0, Math.floor(g.r.w / 7));
                root.appendChild(label);
            }
        });
        box.appendChild(root);
    }

    // ---- wiring ---------------------------------------------------------------------------------

    function selectDump(i) {
        state.dumpIndex = i;
        $('dump-select').value = String(i);
        renderDump();
    }

    function renderDump() {
        renderAlerts();
        renderOverview();
        renderObjects();
        renderTimeline();
        renderTreemap();
    }

    function renderAll(keepSelection) {
        var n = dumps().length;
        if (!keepSelection || state.dumpIndex >= n) state.dumpIndex = Math.max(0, n - 1);
        fillDumpSelect($('dump-select'), state.dumpIndex);
        var a = $('diff-a').value, b = $('diff-b').value;
        fillDumpSelect($('diff-a'), keepSelection && a !== '' && +a < n ? +a : 0);
        fillDumpSelect($('diff-b'), keepSelection && b !== '' && +b < n ? +b : Math.max(0, n - 1));
        renderDump();
        if (n > 1) renderDiff();
    }

    function readJSON(id) {
        var node = $(id);
        if (!node) return null;
        var text = node.textContent.trim();
        if (!text || text.charAt(0) === '@') return null;
        try { return JSON.parse(text); } catch (e) {
            console.error('shmtrack: cannot parse #' + id + ': ' + e);
            return null;
        }
    }

    function getText(url) {
        return fetch(url, { cache: 'no-store' }).then(function (r) {
            if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
            return r.text();
        });
    }

    // Re-renders only when the data changed, so a reader's open menus and scroll stay put.
    var lastText = null;
    function refresh() {
        Promise.all([getText(state.config.api || 'api/dumps'),
                     getText(state.config.extra_api || 'api/extra').catch(function () { return null; })])
        .then(function (res) {
            var text = res[0] + '\n' + res[1];
            if (text !== lastText) {
                var rep = JSON.parse(res[0]);
                var sameLast = state.dumpIndex === dumps().length - 1;
                state.report = rep;
                if (res[1]) state.extra = JSON.parse(res[1]);
                if (sameLast) state.dumpIndex = dumps().length - 1;
                renderAll(true);
                lastText = text;
            }
            $('live-status').textContent = 'live \u00b7 updated ' + new Date().toLocaleTimeString();
            document.body.setAttribute('data-refreshed', String(Date.now()));
        }).catch(function (e) {
            $('live-status').textContent = 'live \u00b7 refresh failed: ' + e.message;
        });
    }

    function init() {
        state.config = readJSON('shmtrack-config') || {};
        state.report = readJSON('shmtrack-data') || { dumps: [] };
        state.extra = readJSON('shmtrack-extra') || {};
        $('dump-select').addEventListener('change', function () { selectDump(+this.value); });
        $('object-filter').addEventListener('input', function () { state.filter = this.value; renderObjects(); });
        $('diff-run').addEventListener('click', renderDiff);
        renderAll(false);
        if (state.config.live && location.protocol !== 'file:') {
            refresh();
            setInterval(refresh, state.config.refresh_ms || 2000);
        }
        document.body.setAttribute('data-ready', '1');
    }

    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
    else init();
})();
