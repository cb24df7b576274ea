package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// Wire paths of the daemon's HTTP API (see the package documentation).
const (
	PathEndpoints = "/v1/endpoints"
	PathPing      = "/v1/ping"
	PathRoutes    = "/v1/routes"
)

// Route is one prefix the node's speaker originates, with the Services behind it and the
// BGPPeers it is sent to (GET /v1/routes).
type Route struct {
	Prefix   string   `json:"prefix"`
	Services []string `json:"services,omitempty"`
	Peers    []string `json:"peers,omitempty"`
}

// ErrorBody is the JSON body of every non-2xx response.
type ErrorBody struct {
	Error string `json:"error"`
}

// StatusError is returned by Client when the daemon answers with a non-2xx status.
type StatusError struct {
	StatusCode int
	Message    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("daemon answered %d: %s", e.StatusCode, e.Message)
}

// Client talks HTTP/JSON to bgplbd over its unix socket. It holds no connection between
// calls that matters for correctness; bound every call with a context deadline.
type Client struct {
	socketPath string
	http       *http.Client
}

// NewClient returns a client for the daemon listening on socketPath.
func NewClient(socketPath string) *Client {
	d := &net.Dialer{}
	return &Client{
		socketPath: socketPath,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socketPath)
			},
			DisableCompression: true,
		}},
	}
}

// Register adds or replaces e in the daemon's registry. Idempotent by e.Key().
func (c *Client) Register(ctx context.Context, e Endpoint) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode endpoint %s: %w", e.Key(), err)
	}
	if err := c.do(ctx, http.MethodPut, PathEndpoints, body, nil); err != nil {
		return fmt.Errorf("register endpoint %s: %w", e.Key(), err)
	}
	return nil
}

// Unregister removes (containerID, ifName) from the daemon's registry. Removing an unknown
// endpoint succeeds.
func (c *Client) Unregister(ctx context.Context, containerID, ifName string) error {
	p := PathEndpoints + "/" + url.PathEscape(containerID) + "/" + url.PathEscape(ifName)
	if err := c.do(ctx, http.MethodDelete, p, nil, nil); err != nil {
		return fmt.Errorf("unregister endpoint %s/%s: %w", containerID, ifName, err)
	}
	return nil
}

// List returns every endpoint the daemon knows, sorted by key.
func (c *Client) List(ctx context.Context) ([]Endpoint, error) {
	var eps []Endpoint
	if err := c.do(ctx, http.MethodGet, PathEndpoints, nil, &eps); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return eps, nil
}

// Routes returns the prefixes the node's speaker originates, sorted.
func (c *Client) Routes(ctx context.Context) ([]Route, error) {
	var rs []Route
	if err := c.do(ctx, http.MethodGet, PathRoutes, nil, &rs); err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return rs, nil
}

// Ping returns nil when the daemon is reachable and serving the registry.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.do(ctx, http.MethodGet, PathPing, nil, nil); err != nil {
		return fmt.Errorf("ping daemon at %s: %w", c.socketPath, err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// The host part is ignored by the unix-socket dialer.
	req, err := http.NewRequestWithContext(ctx, method, "http://bgplbd"+path, rd)
	if err != nil {
		return fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }() // body fully consumed below or error already returned
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read response of %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var eb ErrorBody
		msg := string(data)
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		return &StatusError{StatusCode: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

// IsUnreachable reports whether err means the daemon could not be reached at all (no
// socket, nobody listening, timeout), as opposed to an answer with an error status.
func IsUnreachable(err error) bool {
	if err == nil {
		return false
	}
	var se *StatusError
	return !errors.As(err, &se)
}
