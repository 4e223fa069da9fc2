package eventstore

// SetBarrierTries sets how often s's barriers try their locks before they
// wait for them, so that a test can hold a reader in its tries.
func SetBarrierTries(s *Store, n int) { s.barrierTries = n }
