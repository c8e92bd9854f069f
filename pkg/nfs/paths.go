package nfs

import (
	"fmt"
	"net/netip"
	"strings"
)

const (
	// MaxComponentLen is NAME_MAX on Linux and on every NFS server we care about.
	MaxComponentLen = 255
	// MaxSubDirLen bounds a subdirectory path so that share+subdir stays far
	// below PATH_MAX (4096) even for long share paths.
	MaxSubDirLen = 1024
	// MaxShareLen bounds the export path for the same reason.
	MaxShareLen = 1024
	// MetadataDirName is the directory at the share root where the driver keeps
	// its created-volume records. No volume may live under it.
	MetadataDirName = ".nfs-csi"
)

// ValidateServer accepts a DNS hostname, an IPv4 address, or an IPv6 address
// in brackets, which is exactly what mount.nfs accepts before the ':' of a
// source. Anything else could change the meaning of "server:/share".
func ValidateServer(server string) error {
	if server == "" {
		return fmt.Errorf("server is empty")
	}
	if strings.HasPrefix(server, "[") {
		if !strings.HasSuffix(server, "]") {
			return fmt.Errorf("server %q: an IPv6 address must be in brackets, like [fd00::1]", server)
		}
		addr, err := netip.ParseAddr(server[1 : len(server)-1])
		if err != nil || !addr.Is6() {
			return fmt.Errorf("server %q is not a valid bracketed IPv6 address", server)
		}
		if addr.Zone() != "" {
			// A zone is free text to netip, which would let ']', ':' or '/'
			// change the meaning of "server:/share".
			return fmt.Errorf("server %q: IPv6 zones (%%%s) are not supported; use a global or unique-local address", server, addr.Zone())
		}
		return nil
	}
	if strings.Contains(server, ":") {
		return fmt.Errorf("server %q: put an IPv6 address in brackets, like [%s]", server, server)
	}
	if len(server) > 253 {
		return fmt.Errorf("server %q is longer than 253 characters", server)
	}
	for _, label := range strings.Split(server, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("server %q is not a valid hostname or IP address", server)
		}
		for i, c := range label {
			alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
			if !alnum && (c != '-' || i == 0 || i == len(label)-1) && c != '_' {
				return fmt.Errorf("server %q is not a valid hostname or IP address (character %q)", server, c)
			}
		}
	}
	return nil
}

// ValidateShare accepts an absolute, clean export path such as /srv/nfs or,
// for an NFSv4 pseudo-root, "/".
func ValidateShare(share string) error {
	if share == "" {
		return fmt.Errorf("share is empty")
	}
	if !strings.HasPrefix(share, "/") {
		return fmt.Errorf("share %q must be an absolute export path such as /srv/nfs", share)
	}
	if len(share) > MaxShareLen {
		return fmt.Errorf("share %q is longer than %d bytes", share, MaxShareLen)
	}
	if share == "/" {
		return nil
	}
	if err := validateComponents(strings.TrimPrefix(share, "/")); err != nil {
		return fmt.Errorf("share %q: %w", share, err)
	}
	return nil
}

// ValidateSubDir accepts a relative path of plain components: no "..", no
// ".", no empty components, no leading or trailing slash, no NUL or control
// characters, and not under the driver's metadata directory. An empty subDir
// is the share root, which only a static volume may use; callers that create
// or delete directories must reject it themselves.
func ValidateSubDir(subDir string) error {
	if subDir == "" {
		return nil
	}
	if strings.HasPrefix(subDir, "/") {
		return fmt.Errorf("subDir %q must be relative to the share, not absolute", subDir)
	}
	if len(subDir) > MaxSubDirLen {
		return fmt.Errorf("subDir %q is longer than %d bytes", subDir, MaxSubDirLen)
	}
	if err := validateComponents(subDir); err != nil {
		return fmt.Errorf("subDir %q: %w", subDir, err)
	}
	if first, _, _ := strings.Cut(subDir, "/"); first == MetadataDirName {
		return fmt.Errorf("subDir %q: %s is reserved for the driver's own records", subDir, MetadataDirName)
	}
	return nil
}

// ValidateComponent checks one path component, such as a template variable's
// value, with the same rules as a subDir component.
func ValidateComponent(c string) error {
	if strings.Contains(c, "/") {
		return fmt.Errorf("%q contains '/'", c)
	}
	return validateComponents(c)
}

func validateComponents(p string) error {
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "":
			return fmt.Errorf("empty path component (a doubled or trailing '/')")
		case c == "." || c == "..":
			return fmt.Errorf("component %q is not allowed", c)
		case len(c) > MaxComponentLen:
			return fmt.Errorf("component %.20q... is longer than %d bytes", c, MaxComponentLen)
		}
		for _, r := range c {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("component %q contains a NUL or control character", c)
			}
		}
	}
	return nil
}
