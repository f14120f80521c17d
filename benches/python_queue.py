"""Baseline for docs/benchmarks.md: items per second through Python's multiprocessing.Queue
(one producer process, one consumer, small ints, None sentinel).

Run: python3 benches/python_queue.py
"""
import multiprocessing as mp, time
N = 200_000
def producer(q):
    for i in range(N):
        q.put(i)
    q.put(None)
if __name__ == "__main__":
    q = mp.Queue()
    p = mp.Process(target=producer, args=(q,))
    t = time.perf_counter()
    p.start()
    n = 0
    while q.get() is not None:
        n += 1
    dt = time.perf_counter() - t
    p.join()
    print(f"python multiprocessing.Queue: {n} items in {dt:.2f} s = {n/dt/1e3:.0f} k items/s")
