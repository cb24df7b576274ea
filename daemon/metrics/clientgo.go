package metrics

import (
	// client-go's metrics on the legacy registry: REST client requests, latency and
	// rate limiting (rest_client_*), leader election (leader_election_master_status,
	// leader_election_slowpath_total) and the informers' FIFOs; the work queues'
	// (workqueue_*) are registered by daemon/watch, which owns the queues.
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
)
