// Command podserver is the lab's test backend: the process the lab kubelet runs
// for every pod, whatever image the pod names.
//
// It listens on every address (IPv4 and IPv6) of its network namespace:
//
//   - On each TCP port (--tcp 8080,9090) an HTTP server:
//     "/" and "/hostname" answer the server name (--name, default the host name);
//     "/clientip" answers the remote IP the server saw, without the port;
//     "/echo" answers the request body, or the "msg" query parameter when the body is empty;
//     "/fetch?addr=<ip:port>&path=</p>" fetches http://<addr><path> from the server itself
//     (a new connection, 3 s bound) and answers the body, or 502 with the error;
//     GET "/ready" answers 200 "ready" or 503 "not ready";
//     POST "/ready" with body "true"/"false" (or ?ready=true|false) sets readiness.
//     Bodies carry no trailing newline.
//   - On each UDP port (--udp 5353) every datagram is answered with one line
//     "hostname=<name> client=<ip>:<port> echo=<payload>" (no trailing newline).
//
// On SIGTERM (or SIGINT) the server reports not ready on /ready but keeps
// serving for the shutdown delay (--shutdown-delay, default 2s; the environment
// variable SHUTDOWN_DELAY, a Go duration or whole seconds, overrides it), then
// exits 0. This mimics a well-behaved application during a rolling update, so the
// lab can show endpoints passing through terminating/serving before they vanish.
package main
