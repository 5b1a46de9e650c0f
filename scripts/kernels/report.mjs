// Reads what one guest sent over its results port (guest-run.sh) and says
// whether that kernel passed, with tap's counts, the measurements and the probe.
// A guest that did not print the end marker failed, whatever it printed before:
// a panic or a hang halfway must not read as a short pass.

const TAP_SUMMARY = /^# \{ total: \d+(, [a-z]+: \d+)* \}$/m;

/** @param {string} results the text of the results port */
export function readResults(results) {
  const begun = results.includes('MIMD-KERNELS-BEGIN');
  const ended = /^MIMD-KERNELS-END$/m.test(results);
  const exitLine = results.match(/^MIMD-KERNELS-TESTS-EXIT (\d+) (\d+)ms$/m);
  const summaryLine = results.match(TAP_SUMMARY)?.[0] ?? null;
  const count = (key) => Number(summaryLine?.match(new RegExp(`[{ ]${key}: (\\d+)`))?.[1] ?? 0);
  const measures = [...results.matchAll(/^\s*# measure (\{.*\})$/gm)].map((m) => {
    try {
      return JSON.parse(m[1]);
    } catch {
      return {};
    }
  });
  const probeLine = results.match(/^MIMD-KERNELS-PROBE(-MISSING|-ERROR)? (.*)$/m);
  let probe = null;
  if (probeLine && !probeLine[1]) {
    try {
      probe = JSON.parse(probeLine[2]);
    } catch {
      probe = null;
    }
  }
  const failedTests = [...results.matchAll(/^(\s*)not ok \d+ - (.*?)(?: # time=.*)?$/gm)].map((m) => `${m[1].length ? '  ' : ''}${m[2]}`);
  return {
    begun,
    ended,
    testsExit: exitLine ? Number(exitLine[1]) : null,
    testsMs: exitLine ? Number(exitLine[2]) : null,
    summaryLine,
    pass: count('pass'),
    fail: count('fail'),
    todo: count('todo'),
    skip: count('skip'),
    measures: Object.assign({}, ...measures),
    probe,
    probeNote: probeLine?.[1] ? `${probeLine[1].slice(1).toLowerCase()}: ${probeLine[2]}` : probeLine ? null : 'no probe line',
    failedTests,
  };
}

/**
 * The verdict for one kernel. `fail` is what goes into the CI count: tap's
 * failures, or 1 when the run broke without tap counting anything as failed.
 */
export function verdict(r) {
  const problems = [];
  if (!r.begun) problems.push('the guest never started the tests');
  else if (!r.ended) problems.push('no end marker (panic, hang or timeout)');
  if (r.begun && !r.summaryLine) problems.push('no tap summary');
  if (r.testsExit !== null && r.testsExit !== 0 && r.fail === 0) problems.push(`tests exited ${r.testsExit}`);
  if (r.summaryLine && r.pass === 0) problems.push('no test passed');
  const fail = r.fail + (problems.length > 0 && r.fail === 0 ? 1 : 0);
  return { ok: problems.length === 0 && r.fail === 0, pass: r.pass, fail, problems };
}
