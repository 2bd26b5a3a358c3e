// SPDX-License-Identifier: MIT
//
// Browser test of shmtrack's memory-infra page, driven by Playwright (playwright-core) with
// Debian's chromium. For a trace (or a saved report), it writes the page with `shmtrack view`,
// opens it from file:// with every non-file request blocked and recorded, and checks against the
// report JSON (`shmtrack report --format json --dump all` of the same trace): every overview and
// object number, each object's holders after a click, the dump selector, the timeline, the diff
// and the treemap, and that warnings of partial dumps are on screen. Then the same against
// `shmtrack serve`. Screenshots go to the artifacts directory.
//
// usage: node view_test.js SHMTRACK (--report FILE | --trace FILE) ARTIFACTS_DIR
'use strict';
const { chromium } = require('playwright-core');
const assert = require('assert');
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [shmtrack, mode, input, artifacts] = process.argv.slice(2);
if (!shmtrack || !['--report', '--trace'].includes(mode) || !input || !artifacts) {
    console.error('usage: node view_test.js SHMTRACK (--report FILE | --trace FILE) ARTIFACTS_DIR');
    process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });
const tag = path.basename(input).replace(/\.[^.]*$/, '');

// The trace's own "malloc" sizes (read here, not by shmtrack): dump index -> pid -> bytes.
function mallocOf() {
    if (mode !== '--trace') return null;
    const t = JSON.parse(fs.readFileSync(input, 'utf8'));
    const ids = [], out = {};
    for (const ev of t.traceEvents) {
        if (ev.ph !== 'v') continue;
        if (!ids.includes(ev.id)) ids.push(ev.id);
        const m = ev.args.dumps.allocators && ev.args.dumps.allocators.malloc;
        if (m) (out[ids.indexOf(ev.id)] = out[ids.indexOf(ev.id)] || {})[ev.pid] = parseInt(m.attrs.size.value, 16);
    }
    return out;
}

function reportOf() {
    if (mode === '--report') return JSON.parse(fs.readFileSync(input, 'utf8'));
    return JSON.parse(execFileSync(shmtrack, ['report', input, '--format', 'json', '--dump', 'all'],
                                   { encoding: 'utf8' }));
}

async function launch() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmtrack-chromium-'));
    const ctx = await chromium.launchPersistentContext(dir, {
        executablePath: process.env.SHMTRACK_CHROMIUM || '/usr/bin/chromium',
        headless: true,
        viewport: { width: 1280, height: 900 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--no-first-run'],
    });
    return { ctx, dir };
}

// Everything the page does must stay on its own origin (file:// or the server under test).
async function guard(page, allowed) {
    const errors = [], outside = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.route('**/*', (route) => {
        const url = route.request().url();
        if (allowed(url)) return route.continue();
        outside.push(url);
        return route.abort();
    });
    return { errors, outside };
}

const bytes = (v) => (v === null || v === undefined ? null : Number(v));

async function tableRows(page, selector) {
    return page.$$eval(selector + ' tbody tr', (trs) => trs.map((tr) => ({
        cls: tr.className,
        pid: tr.getAttribute('data-pid'),
        key: tr.getAttribute('data-key'),
        text: Array.from(tr.cells).map((c) => c.textContent),
        bytes: Object.fromEntries(Array.from(tr.cells)
            .filter((c) => c.hasAttribute('data-bytes'))
            .map((c) => [c.className.replace(/\bnum\b|\bgrow\b|\bshrink\b/g, '').trim() || String(c.cellIndex),
                         Number(c.getAttribute('data-bytes'))])),
        cellBytes: Array.from(tr.cells).map((c) => (c.hasAttribute('data-bytes') ? Number(c.getAttribute('data-bytes')) : null)),
        titles: Array.from(tr.cells).map((c) => c.getAttribute('title')),
    })));
}

const PROC_FIELDS = ['rss_bytes', 'pss_bytes', 'private_footprint_bytes', 'shared_mapped_bytes', 'shared_owned_bytes'];

async function checkDump(page, report, i, opts) {
    const d = report.dumps[i];
    const where = `dump ${i} (${d.id})`;
    await page.selectOption('#dump-select', String(i));

    // Overview: one row per process plus the total, each number the report's.
    const rows = await tableRows(page, '#overview-table');
    assert.strictEqual(rows.length, d.processes.length + 1, `${where}: overview rows`);
    for (const p of d.processes) {
        const r = rows.find((x) => x.pid === String(p.pid));
        assert.ok(r, `${where}: overview has pid ${p.pid}`);
        assert.strictEqual(r.text[0], p.name || '?', `${where}: name of ${p.pid}`);
        for (const f of PROC_FIELDS) {
            assert.strictEqual(r.bytes[f], p[f], `${where}: pid ${p.pid} ${f}`);
        }
        // Formatted with units, exact bytes in the tooltip.
        assert.match(r.titles[6], /^[\d,]+ bytes$/, `${where}: tooltip of pid ${p.pid}`);
        assert.strictEqual(Number(r.titles[6].replace(/[^\d]/g, '')), p.shared_owned_bytes);
    }
    const total = rows[rows.length - 1];
    assert.ok(/total/.test(total.cls), `${where}: last overview row is the total`);
    for (const f of PROC_FIELDS) {
        assert.strictEqual(total.bytes[f], d.processes.reduce((s, p) => s + (p[f] || 0), 0), `${where}: total ${f}`);
    }
    if (opts.malloc && opts.malloc[i]) {
        // The allocator column: a malloc that nobody owns has its size as effective size.
        for (const [pid, size] of Object.entries(opts.malloc[i])) {
            const r = rows.find((x) => x.pid === pid);
            const cell = await page.$(`#overview-table tbody tr[data-pid="${pid}"] td[data-allocator="malloc"]`);
            assert.ok(r && cell, `${where}: malloc column for ${pid}`);
            assert.strictEqual(Number(await cell.getAttribute('data-bytes')), size, `${where}: malloc of ${pid}`);
        }
    }
    for (const k of ['shared_resident_unique', 'attributed', 'unattributed']) {
        const v = await page.getAttribute('#total-' + k, 'data-bytes');
        assert.strictEqual(Number(v), d.totals[k], `${where}: totals.${k}`);
    }

    // Warnings and partial dumps are shown.
    const partial = await page.$('#partial-alert');
    assert.strictEqual(!!partial && (await partial.isVisible()), !!d.partial, `${where}: partial banner`);
    const warnings = await page.$$eval('#warnings-alert li', (lis) => lis.map((l) => l.textContent));
    assert.deepStrictEqual(warnings, (d.warnings || []).map(String), `${where}: warnings shown`);
    const problems = await page.$$eval('#problems-alert li', (lis) => lis.length);
    assert.strictEqual(problems, (d.problems || []).length, `${where}: problems shown`);

    // Objects: every object once with the report's numbers.
    await page.fill('#object-filter', '');
    const objs = await tableRows(page, '#objects-table');
    assert.strictEqual(objs.length, d.objects.length, `${where}: object rows`);
    for (const o of d.objects) {
        const r = objs.find((x) => x.key === o.key);
        assert.ok(r, `${where}: object ${o.key} listed`);
        assert.strictEqual(r.text[1], o.kind, `${where}: ${o.key} kind`);
        assert.strictEqual(r.text[2], o.name || '', `${where}: ${o.key} name`);
        assert.strictEqual(r.bytes.size, o.size, `${where}: ${o.key} size`);
        assert.strictEqual(r.bytes.virtual_size, o.virtual_size, `${where}: ${o.key} virtual size`);
        assert.strictEqual(r.bytes.swapped_size, o.swapped_size, `${where}: ${o.key} swapped`);
        assert.strictEqual(Number(r.text[7]), o.holders.length, `${where}: ${o.key} holders`);
        if (o.owner_pid) assert.ok(r.text[6].includes(String(o.owner_pid)), `${where}: ${o.key} owner`);
    }
    // Sorted by size, largest first, by default.
    const sizes = objs.map((r) => r.bytes.size);
    assert.deepStrictEqual(sizes, sizes.slice().sort((a, b) => b - a), `${where}: sorted by size`);

    // Clicking each object (up to opts.maxClicks) shows its holders and the explanation.
    for (const o of d.objects.slice(0, opts.maxClicks)) {
        await page.click(`#objects-table tbody tr[data-key="${o.key}"]`);
        await page.waitForSelector(`#object-detail[data-key="${o.key}"]`);
        const hs = await tableRows(page, '#holders-table');
        assert.strictEqual(hs.length, o.holders.length, `${where}: ${o.key} holder rows`);
        for (const h of o.holders) {
            const r = hs.find((x) => x.pid === String(h.pid));
            assert.ok(r, `${where}: ${o.key} holder ${h.pid}`);
            assert.strictEqual(Number(r.text[2]), h.importance, `${where}: ${o.key} ${h.pid} importance`);
            assert.strictEqual(r.bytes.effective_size, h.effective_size, `${where}: ${o.key} ${h.pid} effective`);
        }
        const sentence = await page.textContent('#object-explain');
        assert.ok(sentence.length > 10, `${where}: ${o.key} explanation`);
        const charged = o.holders.filter((h) => h.effective_size > 0);
        if (charged.length === 1 && charged[0].pid === o.owner_pid) {
            assert.ok(sentence.startsWith('Owned by ') && sentence.includes(`pid ${o.owner_pid}, importance ${charged[0].importance}`),
                      `${where}: ${o.key} explanation names the owner: ${sentence}`);
            const others = o.holders.length - 1;
            if (others > 0) assert.ok(sentence.includes(`${others} other holder${others > 1 ? 's' : ''} charged 0`), sentence);
        }
        if (!o.holders.length) assert.ok(/unattributed/.test(sentence), sentence);
    }

    // Filtering by kind leaves exactly that kind's objects.
    if (d.objects.length) {
        const kind = d.objects[0].kind;
        await page.fill('#object-filter', kind);
        const f = await tableRows(page, '#objects-table');
        const want = d.objects.filter((o) => [o.key, o.kind, o.name].some((s) => String(s || '').toLowerCase().includes(kind)));
        assert.ok(f.length >= want.length && f.length <= d.objects.length, `${where}: filter by ${kind}`);
        assert.ok(f.every((r) => r.text.join(' ').toLowerCase().includes(kind)), `${where}: filtered rows match`);
        await page.fill('#object-filter', '');
    }

    // Treemap: one cell per (holder charged > 0) plus one per object nobody holds.
    const cells = await page.$$eval('#treemap-svg rect.cell', (rs) => rs.length);
    const want = d.objects.reduce((s, o) => s + o.holders.filter((h) => h.effective_size > 0).length +
                                  (o.holders.length ? 0 : (o.size > 0 ? 1 : 0)), 0);
    if (d.totals.unattributed > 0 || want > 0) assert.strictEqual(cells, want, `${where}: treemap cells`);
}

async function checkDiff(page, report) {
    const n = report.dumps.length;
    if (n < 2) return;
    const a = report.dumps[0], b = report.dumps[n - 1];
    await page.selectOption('#diff-a', '0');
    await page.selectOption('#diff-b', String(n - 1));
    await page.click('#diff-run');
    const rows = await tableRows(page, '#diff-objects');
    const keys = new Set([...a.objects, ...b.objects].map((o) => o.key));
    assert.strictEqual(rows.length, keys.size, 'diff: one row per object of either dump');
    let prev = Infinity;
    for (const r of rows) {
        const oa = a.objects.find((o) => o.key === r.key), ob = b.objects.find((o) => o.key === r.key);
        const delta = (ob ? ob.size : 0) - (oa ? oa.size : 0);
        assert.strictEqual(r.cellBytes[5], delta, `diff: delta of ${r.key}`);
        assert.strictEqual(/grew|added/.test(r.cls), delta > 0, `diff: ${r.key} highlighted iff it grew`);
        assert.ok(delta <= prev, 'diff: largest growth first');
        prev = delta;
    }
    const procs = await tableRows(page, '#diff-processes');
    for (const r of procs) {
        const pa = a.processes.find((p) => String(p.pid) === r.pid), pb = b.processes.find((p) => String(p.pid) === r.pid);
        assert.strictEqual(r.cellBytes[4], (pb ? pb.shared_owned_bytes : 0) - (pa ? pa.shared_owned_bytes : 0), `diff: owned delta of ${r.pid}`);
    }
    const total = Number(await page.getAttribute('#diff-summary span', 'data-bytes'));
    assert.strictEqual(total, b.totals.shared_resident_unique - a.totals.shared_resident_unique, 'diff: total delta');
}

async function checkTimeline(page, report) {
    const bars = await page.$$('#timeline-svg g.bar');
    assert.strictEqual(bars.length, report.dumps.length, 'timeline: one bar per dump');
    if (bars.length > 1) {
        await bars[0].click();
        assert.strictEqual(await page.inputValue('#dump-select'), '0', 'timeline: a click selects the dump');
        await page.selectOption('#dump-select', String(bars.length - 1));
    }
}

async function checkPage(page, report, opts) {
    // The page's data block is the report itself.
    const embedded = await page.evaluate(() => JSON.parse(document.getElementById('shmtrack-data').textContent));
    assert.deepStrictEqual(embedded, report, 'embedded data equals the report JSON');
    const options = await page.$$eval('#dump-select option', (os) => os.length);
    assert.strictEqual(options, report.dumps.length, 'dump selector lists every dump');
    opts.malloc = mallocOf();
    for (let i = 0; i < report.dumps.length; i++) await checkDump(page, report, i, opts);
    await checkTimeline(page, report);
    await checkDiff(page, report);
}

async function fileMode(ctx, report) {
    const html = path.join(artifacts, `${tag}.html`);
    execFileSync(shmtrack, ['view', mode === '--report' ? '--report' : null, input, '-o', html].filter(Boolean));
    const page = await ctx.newPage();
    const g = await guard(page, (u) => u.startsWith('file://'));
    await page.goto('file://' + path.resolve(html));
    await page.waitForSelector('body[data-ready="1"]');
    await checkPage(page, report, { maxClicks: 50 });
    // Leave the most telling view on screen: the last dump, its largest object opened, the diff.
    await page.selectOption('#dump-select', String(report.dumps.length - 1));
    const last = report.dumps[report.dumps.length - 1];
    if (last && last.objects.length) {
        const big = last.objects.slice().sort((x, y) => y.size - x.size)[0];
        await page.click(`#objects-table tbody tr[data-key="${big.key}"]`);
    }
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(artifacts, `${tag}-file.png`), fullPage: true });
    assert.deepStrictEqual(g.outside, [], 'the page made no request outside file://');
    assert.deepStrictEqual(g.errors, [], 'no script errors');
    await page.close();
}

function startServe(source) {
    return new Promise((resolve, reject) => {
        const args = ['serve', mode === '--report' ? '--report' : null, source, '--port', '0', '--interval', '300'].filter(Boolean);
        const child = spawn(shmtrack, args, { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (c) => {
            out += c;
            const m = /listening on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
            if (m) resolve({ child, url: m[1] });
        });
        child.on('exit', (code) => reject(new Error('serve exited ' + code)));
        setTimeout(() => reject(new Error('serve did not start')), 10000);
    });
}

async function serveMode(ctx, report) {
    // A copy, so the live-refresh check below can rewrite it.
    const source = path.join(artifacts, `${tag}-served${path.extname(input)}`);
    fs.copyFileSync(input, source);
    const { child, url } = await startServe(source);
    try {
        const page = await ctx.newPage();
        const g = await guard(page, (u) => u.startsWith(url));
        await page.goto(url);
        await page.waitForSelector('body[data-refreshed]', { timeout: 10000 });
        const api = await page.evaluate(() => fetch('api/dumps').then((r) => r.json()));
        assert.deepStrictEqual(api, report, '/api/dumps equals the report JSON');
        await checkPage(page, report, { maxClicks: 10 });
        await page.evaluate(() => window.scrollTo(0, 0));
        await page.screenshot({ path: path.join(artifacts, `${tag}-serve.png`), fullPage: true });
        if (mode === '--report' && report.dumps.length) {
            // Live: a new dump appears in the open page without a reload.
            const next = JSON.parse(JSON.stringify(report));
            const added = JSON.parse(JSON.stringify(report.dumps[report.dumps.length - 1]));
            added.id = '0xfff';
            added.ts += 1000000;
            added.processes.forEach((p) => { p.rss_bytes += 4096; });
            next.dumps.push(added);
            fs.writeFileSync(source + '.tmp', JSON.stringify(next));
            fs.renameSync(source + '.tmp', source);
            // Polled from here: the page's CSP forbids the eval that waitForFunction needs.
            const deadline = Date.now() + 10000;
            while ((await page.$$eval('#dump-select option', (o) => o.length)) !== next.dumps.length) {
                assert.ok(Date.now() < deadline, 'live: the new dump did not appear within 10 s');
                await page.waitForTimeout(100);
            }
            assert.strictEqual(await page.inputValue('#dump-select'), String(next.dumps.length - 1),
                               'live: the page follows the newest dump');
            await checkDump(page, next, next.dumps.length - 1, { maxClicks: 3 });
            console.log('ok: the served page picked up a new dump without a reload');
        }
        assert.deepStrictEqual(g.outside, [], 'the served page made no request elsewhere');
        assert.deepStrictEqual(g.errors, [], 'no script errors (served)');
        await page.close();
    } finally {
        child.kill('SIGTERM');
    }
}

(async () => {
    const report = reportOf();
    const { ctx, dir } = await launch();
    try {
        await fileMode(ctx, report);
        console.log(`ok: file:// page of ${input} (${report.dumps.length} dumps) matches the report`);
        await serveMode(ctx, report);
        console.log(`ok: served page of ${input} matches the report`);
    } finally {
        await ctx.close();
        fs.rmSync(dir, { recursive: true, force: true });
    }
    console.log('screenshots in ' + artifacts);
})().catch((e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
});
