package nfs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ShareOption gives the mount options of the controller's own mounts of one
// share, in place of those each volume ID carries. The handle freezes the
// options a volume was created with; when one stops working (the server drops
// NFSv3), this is how the controller still reaches the share to delete its
// volumes, since a PV's handle cannot be edited.
type ShareOption struct {
	Server       string   `json:"server"`
	Share        string   `json:"share"`
	MountOptions []string `json:"mountOptions"`
}

// ShareOptions are the controller's share mount options by server and
// share (--share-mount-options). The zero value overrides nothing.
type ShareOptions struct {
	byShare map[string][]string
}

func shareOptionKey(server, share string) string {
	return strings.ToLower(server) + "\x00" + share
}

// ParseShareOptions reads a JSON list of ShareOption, strictly: unknown
// fields, an invalid server, share or option, and a share listed twice are
// errors. Empty input overrides nothing.
func ParseShareOptions(data string) (ShareOptions, error) {
	var o ShareOptions
	if strings.TrimSpace(data) == "" {
		return o, nil
	}
	var list []ShareOption
	dec := json.NewDecoder(bytes.NewReader([]byte(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return o, fmt.Errorf(`want a JSON list of {"server": ..., "share": ..., "mountOptions": [...]}: %w`, err)
	}
	o.byShare = map[string][]string{}
	for i, s := range list {
		if err := ValidateServer(s.Server); err != nil {
			return ShareOptions{}, fmt.Errorf("entry %d: %w", i+1, err)
		}
		if err := ValidateShare(s.Share); err != nil {
			return ShareOptions{}, fmt.Errorf("entry %d (%s): %w", i+1, s.Server, err)
		}
		if err := ValidateMountOptions(s.MountOptions); err != nil {
			return ShareOptions{}, fmt.Errorf("entry %d (%s:%s): %w", i+1, s.Server, s.Share, err)
		}
		key := shareOptionKey(s.Server, s.Share)
		if _, dup := o.byShare[key]; dup {
			return ShareOptions{}, fmt.Errorf("entry %d: %s:%s is listed twice", i+1, s.Server, s.Share)
		}
		o.byShare[key] = append([]string{}, s.MountOptions...)
	}
	return o, nil
}

// For returns the configured options of server:share, if any. Servers
// compare case-insensitively (host names are), shares exactly.
func (o ShareOptions) For(server, share string) ([]string, bool) {
	opts, ok := o.byShare[shareOptionKey(server, share)]
	return opts, ok
}

// Len is the number of shares with configured options.
func (o ShareOptions) Len() int { return len(o.byShare) }
