// Package suite is the frame of the bgplb conformance suite, shaped like the Gateway
// API conformance suite: each ConformanceTest declares the features it needs,
// features group into profiles (LB-IPAM, LB-BGP, LB-DATAPATH, CNI-CHAINED), and a run
// writes a report (implementation, mode, environment, router, and per profile the
// core/extended results with the names of passed, failed and skipped tests). A
// skipped core test makes its profile "partial".
//
// The suite observes only from outside: the API server, a real router's RIB/FIB
// (package router) and real traffic from a client (Client). It runs against the
// one-machine lab by default and against any cluster that provides those three.
package suite
