package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client calls one agent. Its errors are *Error when the agent answered,
// and *UnreachableError when it did not.
type Client struct {
	// Address is host:port of the agent.
	Address string
	http    *http.Client
}

// UnreachableError is a call that got no answer from the agent.
type UnreachableError struct {
	Address string
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("quota agent %s did not answer: %v", e.Address, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// NewClient returns a client of the agent at address with a client
// certificate and key and the CA that signed the agent's certificate, all
// PEM. serverName, when set, is the name the agent's certificate must have
// (otherwise the host of address).
func NewClient(address, serverName string, certPEM, keyPEM, caPEM []byte) (*Client, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate for quota agent %s: %w", address, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA for quota agent %s holds no PEM certificate", address)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS13}
	return &Client{Address: address, http: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}}, nil
}

// Set sets the limit of a volume's directory, assigning a project ID once.
func (c *Client) Set(ctx context.Context, req Request) (Status, error) {
	var s Status
	return s, c.call(ctx, PathSet, req, &s)
}

// Get reads the quota of a volume's directory.
func (c *Client) Get(ctx context.Context, req Request) (Status, error) {
	var s Status
	return s, c.call(ctx, PathGet, req, &s)
}

// Clear removes the limit and the project ID of a volume's directory.
func (c *Client) Clear(ctx context.Context, req Request) error {
	return c.call(ctx, PathClear, req, &struct{}{})
}

// Capacity reports a share's file system.
func (c *Client) Capacity(ctx context.Context, share string) (Capacity, error) {
	var out Capacity
	return out, c.call(ctx, PathCapacity, Request{Share: share}, &out)
}

func (c *Client) call(ctx context.Context, path string, req Request, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.Address+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hr)
	if err != nil {
		return &UnreachableError{Address: c.Address, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &UnreachableError{Address: c.Address, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			return &Error{Code: CodeInternal, Message: fmt.Sprintf("quota agent %s answered %s: %s", c.Address, resp.Status, strings.TrimSpace(string(data)))}
		}
		e.Message = fmt.Sprintf("quota agent %s: %s", c.Address, e.Message)
		return &e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("quota agent %s answered %s with %q: %w", c.Address, path, data, err)
	}
	return nil
}

// IsUnreachable reports whether err is a call that got no answer.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}
