package main

import (
	"os"

	"github.com/tedsuo/ifrit"
)

// bannerRunner prints once every member before it is ready, then waits for
// the stop signal.
func bannerRunner(print func()) ifrit.Runner {
	return ifrit.RunFunc(func(signals <-chan os.Signal, ready chan<- struct{}) error {
		print()
		close(ready)
		<-signals
		return nil
	})
}
