package replicaset

import "sync"

// SlowStartInitialBatch is the size of the first batch of creations.
const SlowStartInitialBatch = 1

// slowStart calls fn count times in batches of 1, 2, 4, ... run
// concurrently, stopping after the first batch with a failure: a quota or
// admission problem then costs one failed request, not count. It returns
// how many calls succeeded and the first error.
func slowStart(count, initial int, fn func() error) (int, error) {
	done := 0
	remaining := count
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		errs := make(chan error, batch)
		var wg sync.WaitGroup
		for range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		done += batch - len(errs)
		if err, failed := <-errs; failed {
			return done, err
		}
		remaining -= batch
	}
	return done, nil
}
