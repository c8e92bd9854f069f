// Package agent is the server-side half of enforced capacity: "nfs-csi
// agent" runs on the NFS server next to nfsd and sets project quotas (XFS,
// or ext4 with prjquota) on volume directories, which cannot be done over
// NFS. The controller calls it over HTTPS with mutual TLS.
//
// The agent acts only on directories strictly below the roots it is
// configured with, walked without following symlinks, that carry a live
// creation record of the volume named in the request, and only with project
// IDs of its configured range that it assigned itself. A refused request
// changes nothing.
package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/example/nfs-csi/pkg/nfs"
)

// The agent's HTTP API: each is a POST of a JSON Request.
const (
	PathSet      = "/v1/quota/set"
	PathGet      = "/v1/quota/get"
	PathClear    = "/v1/quota/clear"
	PathCapacity = "/v1/capacity"
)

// MaxRequestBytes bounds a request body; a real one is under 4 KiB.
const MaxRequestBytes = 16 << 10

// MaxCapacityBytes is the largest limit the agent sets (an exabyte): above
// it the kernel's block counts overflow on some file systems.
const MaxCapacityBytes = 1 << 60

// Request names a volume directory and, for set, its limit.
type Request struct {
	// Share is the export path as the volume ID has it ("/srv/nfs", or "/"
	// for an NFSv4 pseudo-root); it must be one of the agent's roots.
	Share string `json:"share"`
	// SubDir is the volume's directory below the share, never empty.
	SubDir string `json:"subDir,omitempty"`
	// VolumeID must be the volume ID in the directory's creation record.
	VolumeID string `json:"volumeID,omitempty"`
	// CapacityBytes is the hard limit to set (set only).
	CapacityBytes int64 `json:"capacityBytes,omitempty"`
}

// Status is the quota of one volume directory.
type Status struct {
	ProjectID  uint32 `json:"projectID"`
	LimitBytes int64  `json:"limitBytes"`
	UsedBytes  int64  `json:"usedBytes"`
	UsedInodes int64  `json:"usedInodes"`
}

// Capacity is what a root's file system holds and what the agent promised.
type Capacity struct {
	TotalBytes     int64 `json:"totalBytes"`
	AvailableBytes int64 `json:"availableBytes"`
	// PromisedBytes is the sum of the limits the agent set below this root.
	PromisedBytes int64 `json:"promisedBytes"`
}

// Code classifies a refusal, with the names of the gRPC codes the
// controller answers with.
type Code string

// The codes an agent answers with.
const (
	CodeInvalidArgument    Code = "InvalidArgument"
	CodePermissionDenied   Code = "PermissionDenied"
	CodeNotFound           Code = "NotFound"
	CodeFailedPrecondition Code = "FailedPrecondition"
	CodeResourceExhausted  Code = "ResourceExhausted"
	CodeInternal           Code = "Internal"
)

// Error is a refusal or failure, as sent on the wire.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (c Code) httpStatus() int {
	switch c {
	case CodeInvalidArgument:
		return http.StatusBadRequest
	case CodePermissionDenied:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeFailedPrecondition:
		return http.StatusPreconditionFailed
	case CodeResourceExhausted:
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

// DecodeRequest parses one request body strictly: one JSON object of known
// fields, nothing after it, then checks its fields for the operation at
// path. It changes nothing and touches no file.
func DecodeRequest(path string, body []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, errorf(CodeInvalidArgument, "request to %s is not a JSON object of share, subDir, volumeID and capacityBytes: %v", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, errorf(CodeInvalidArgument, "request to %s has data after its JSON object", path)
	}
	return req, req.validate(path)
}

func (r Request) validate(path string) error {
	if err := nfs.ValidateShare(r.Share); err != nil {
		return errorf(CodeInvalidArgument, "%v", err)
	}
	if path == PathCapacity {
		if r.SubDir != "" || r.VolumeID != "" || r.CapacityBytes != 0 {
			return errorf(CodeInvalidArgument, "a capacity request of share %s names only the share", r.Share)
		}
		return nil
	}
	if r.SubDir == "" {
		return errorf(CodeInvalidArgument, "request for share %s names no subDir: the agent acts only strictly below its roots", r.Share)
	}
	if err := nfs.ValidateSubDir(r.SubDir); err != nil {
		return errorf(CodeInvalidArgument, "share %s: %v", r.Share, err)
	}
	if r.VolumeID == "" {
		return errorf(CodeInvalidArgument, "request for %s/%s names no volumeID", r.Share, r.SubDir)
	}
	if len(r.VolumeID) > 4096 {
		return errorf(CodeInvalidArgument, "volumeID of %s/%s is longer than 4096 bytes", r.Share, r.SubDir)
	}
	switch {
	case path == PathSet && (r.CapacityBytes <= 0 || r.CapacityBytes > MaxCapacityBytes):
		return errorf(CodeInvalidArgument, "capacityBytes %d for volume %s (%s/%s) must be between 1 and %d", r.CapacityBytes, r.VolumeID, r.Share, r.SubDir, int64(MaxCapacityBytes))
	case path != PathSet && r.CapacityBytes != 0:
		return errorf(CodeInvalidArgument, "capacityBytes is only for %s (volume %s, %s/%s)", PathSet, r.VolumeID, r.Share, r.SubDir)
	}
	return nil
}

// asError turns any error into the wire form; a bare error is Internal.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}
