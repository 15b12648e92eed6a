package docker

// WaitHolders waits until the holders that the pool is starting in the
// background are started, for benchmarks that keep that work out of
// what they time.
func (e *Executor) WaitHolders() {
	if e.nets != nil {
		e.nets.warmers.Wait()
	}
}
