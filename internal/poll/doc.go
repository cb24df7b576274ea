// Package poll is the repository's one Eventually and Consistently for tests: thin
// wrappers over gomega's, so that every test polls the same way and fails with the same
// kind of message (what was awaited and the condition's last value).
//
// A condition is a func() bool (true: done), a func() error (nil: done) or a func() string
// ("" : done; otherwise it says what is still wrong). The caller gives the timeout and
// the polling interval: a test of an in-process loop polls every few milliseconds, a lab
// test that runs commands every few hundred.
package poll
