// Package tests holds the bgplb conformance tests, one file per test, each appended
// to ConformanceTests in init() (like Gateway API's conformance/tests). The IDs refer
// to docs/conformance.md.
package tests

import "github.com/bgplb/bgplb/conformance/suite"

// ConformanceTests is every registered test, in registration order.
var ConformanceTests []suite.ConformanceTest
