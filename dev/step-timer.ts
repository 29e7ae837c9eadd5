// Seconds per step of a bring-up, logged as each step ends and kept for benchmarks and the README.
export function stepTimer(log: (line: string) => void) {
  const timings: Array<[string, number]> = [];
  let mark = performance.now();
  const step = (what: string) => {
    const now = performance.now();
    timings.push([what, (now - mark) / 1000]);
    log(`${what} in ${((now - mark) / 1000).toFixed(1)} s`);
    mark = now;
  };
  return { timings, step };
}
