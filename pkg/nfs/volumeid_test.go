package nfs

import (
	"path"
	"reflect"
	"strings"
	"testing"
)

func TestVolumeIDRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		vol  Volume
		id   string // the expected rendering, when worth pinning down
	}{
		{
			name: "ipv4",
			vol:  Volume{Server: "192.168.1.10", Share: "/srv/nfs", SubDir: "pvc-1", OnDelete: OnDeleteDelete},
			id:   "v1#delete#192.168.1.10#/srv/nfs#pvc-1#",
		},
		{
			name: "hostname with mount options",
			vol:  Volume{Server: "nfs-1.example.com", Share: "/export", SubDir: "pvc-2", OnDelete: OnDeleteRetain, MountOptions: []string{"vers=4.1", "hard", "nconnect=4"}},
			id:   "v1#retain#nfs-1.example.com#/export#pvc-2#vers=4.1,hard,nconnect=4",
		},
		{
			name: "bracketed ipv6",
			vol:  Volume{Server: "[fd00::1]", Share: "/srv", SubDir: "a", OnDelete: OnDeleteArchive},
			id:   "v1#archive#[fd00::1]#/srv#a#",
		},
		{
			name: "share root",
			vol:  Volume{Server: "h", Share: "/", SubDir: "pvc-3", OnDelete: OnDeleteDelete},
			id:   "v1#delete#h#/#pvc-3#",
		},
		{
			name: "nested subDir",
			vol:  Volume{Server: "h", Share: "/srv/nfs", SubDir: "team-a/app/pvc-4", OnDelete: OnDeleteArchive},
			id:   "v1#archive#h#/srv/nfs#team-a/app/pvc-4#",
		},
		{
			name: "hash and percent in names",
			vol:  Volume{Server: "h", Share: "/srv/#weird%", SubDir: "a#b/%23/100%", OnDelete: OnDeleteDelete, MountOptions: []string{"opt#1", "x=%25"}},
			id:   "v1#delete#h#/srv/%23weird%25#a%23b/%2523/100%25#opt%231,x=%2525",
		},
		{
			name: "empty subDir (static whole share)",
			vol:  Volume{Server: "h", Share: "/srv", OnDelete: OnDeleteRetain},
			id:   "v1#retain#h#/srv##",
		},
		{
			name: "utf-8 and spaces in subDir",
			vol:  Volume{Server: "h", Share: "/srv/my share", SubDir: "ünïcode dir/x", OnDelete: OnDeleteRetain, MountOptions: []string{"ro"}},
		},
		{
			name: "ipv6 with ipv4 suffix, underscore hostname",
			vol:  Volume{Server: "[::ffff:10.0.0.1]", Share: "/s", SubDir: "x", OnDelete: OnDeleteDelete},
		},
		{
			name: "longest component",
			vol:  Volume{Server: "my_host", Share: "/s", SubDir: strings.Repeat("x", MaxComponentLen) + "/y", OnDelete: OnDeleteDelete},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.vol.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			id := tt.vol.ID()
			if tt.id != "" && id != tt.id {
				t.Errorf("ID() = %q, want %q", id, tt.id)
			}
			if n := strings.Count(id, "#"); n != idFields-1 {
				t.Errorf("ID() %q has %d separators, want %d", id, n, idFields-1)
			}
			got, err := ParseVolumeID(id)
			if err != nil {
				t.Fatalf("ParseVolumeID(%q): %v", id, err)
			}
			if !reflect.DeepEqual(got, tt.vol) {
				t.Errorf("ParseVolumeID(%q) = %#v, want %#v", id, got, tt.vol)
			}
			if again := got.ID(); again != id {
				t.Errorf("re-rendered ID %q differs from %q", again, id)
			}
		})
	}
}

func TestVolumeIDDeterministic(t *testing.T) {
	mk := func() Volume {
		return Volume{Server: "h", Share: "/srv", SubDir: "ns/%#/pvc", OnDelete: OnDeleteArchive, MountOptions: []string{"vers=3", "hard"}}
	}
	a, b := mk(), mk()
	if a.ID() != b.ID() {
		t.Fatalf("equal volumes give different IDs: %q, %q", a.ID(), b.ID())
	}
	first := a.ID()
	for range 10 {
		if id := a.ID(); id != first {
			t.Fatalf("ID() changed between calls: %q then %q", first, id)
		}
	}
	// Volumes that differ in any field must not share an ID.
	variants := []Volume{
		{Server: "h2", Share: "/srv", SubDir: "ns/%#/pvc", OnDelete: OnDeleteArchive, MountOptions: []string{"vers=3", "hard"}},
		{Server: "h", Share: "/srv2", SubDir: "ns/%#/pvc", OnDelete: OnDeleteArchive, MountOptions: []string{"vers=3", "hard"}},
		{Server: "h", Share: "/srv", SubDir: "ns/%#/pvc2", OnDelete: OnDeleteArchive, MountOptions: []string{"vers=3", "hard"}},
		{Server: "h", Share: "/srv", SubDir: "ns/%#/pvc", OnDelete: OnDeleteDelete, MountOptions: []string{"vers=3", "hard"}},
		{Server: "h", Share: "/srv", SubDir: "ns/%#/pvc", OnDelete: OnDeleteArchive, MountOptions: []string{"vers=3"}},
		{Server: "h", Share: "/srv", SubDir: "ns/%#/pvc", OnDelete: OnDeleteArchive, MountOptions: []string{"hard", "vers=3"}},
		{Server: "h", Share: "/srv", SubDir: "ns/%23/pvc", OnDelete: OnDeleteArchive, MountOptions: []string{"vers=3", "hard"}},
	}
	for _, v := range variants {
		if v.ID() == first {
			t.Errorf("%#v has the same ID as %#v: %q", v, a, first)
		}
	}
}

func TestParseVolumeIDRejects(t *testing.T) {
	long := strings.Repeat("a", MaxComponentLen+1)
	tests := []struct {
		name, id string
		want     string // a fragment of the error message
	}{
		{"empty", "", "got 1"},
		{"not ours", "pvc-1234", "got 1"},
		{"wrong version", "v2#delete#h#/s#a#", "version"},
		{"escaped version", "v%231#delete#h#/s#a#", "version"},
		{"5 fields", "v1#delete#h#/s#a", "got 5"},
		{"7 fields", "v1#delete#h#/s#a##", "got 7"},
		{"raw hash in subDir", "v1#delete#h#/s#a#b#", "got 7"},
		{"bad escape %2", "v1#delete#h#/s#a%2#", "bad escape"},
		{"bad escape %zz", "v1#delete#h#/s#a%zz#", "bad escape"},
		{"bad escape trailing %", "v1#delete#h#/s#a%#", "bad escape"},
		{"unused escape %2F", "v1#delete#h#/s#a%2Fb#", "bad escape"},
		{"lower-case is not an escape", "v1#delete#h#/s#%2f#", "bad escape"},
		{"unknown onDelete", "v1#destroy#h#/s#a#", "onDelete"},
		{"onDelete case", "v1#Delete#h#/s#a#", "onDelete"},
		{"empty onDelete", "v1##h#/s#a#", "onDelete"},
		{"empty server", "v1#delete##/s#a#", "server is empty"},
		{"unbracketed ipv6", "v1#delete#fd00::1#/s#a#", "brackets"},
		{"server with port", "v1#delete#h:2049#/s#a#", "brackets"},
		{"server with path", "v1#delete#h:/evil#/s#a#", "brackets"},
		{"unclosed bracket", "v1#delete#[fd00::1#/s#a#", "brackets"},
		{"ipv4 in brackets", "v1#delete#[10.0.0.1]#/s#a#", "IPv6"},
		{"garbage in brackets", "v1#delete#[zz]#/s#a#", "IPv6"},
		{"server with slash", "v1#delete#h/x#/s#a#", "hostname"},
		{"server with space", "v1#delete#h x#/s#a#", "hostname"},
		{"server leading dash", "v1#delete#-h#/s#a#", "hostname"},
		{"server empty label", "v1#delete#a..b#/s#a#", "hostname"},
		{"server with percent", "v1#delete#h%25#/s#a#", "hostname"},
		{"empty share", "v1#delete#h##a#", "share is empty"},
		{"relative share", "v1#delete#h#srv/nfs#a#", "absolute"},
		{"share with ..", "v1#delete#h#/srv/../etc#a#", `".."`},
		{"share with .", "v1#delete#h#/srv/.#a#", `"."`},
		{"share //", "v1#delete#h#//#a#", "empty path component"},
		{"share trailing slash", "v1#delete#h#/srv/#a#", "empty path component"},
		{"share with NUL", "v1#delete#h#/srv\x00#a#", "control"},
		{"share too long", "v1#delete#h#/" + strings.Repeat("a/", MaxShareLen/2) + "#a#", "longer than"},
		{"subDir ..", "v1#delete#h#/s#..#", `".."`},
		{"subDir escaping", "v1#delete#h#/s#../../etc#", `".."`},
		{"subDir .. inside", "v1#delete#h#/s#a/../../b#", `".."`},
		{"subDir .", "v1#delete#h#/s#.#", `"."`},
		{"subDir ./a", "v1#delete#h#/s#./a#", `"."`},
		{"subDir //", "v1#delete#h#/s#a//b#", "empty path component"},
		{"subDir trailing slash", "v1#delete#h#/s#a/#", "empty path component"},
		{"subDir leading slash", "v1#delete#h#/s#/etc#", "absolute"},
		{"subDir only slash", "v1#delete#h#/s#/#", "absolute"},
		{"subDir NUL", "v1#delete#h#/s#a\x00b#", "control"},
		{"subDir newline", "v1#delete#h#/s#a\nb#", "control"},
		{"subDir tab", "v1#delete#h#/s#a\tb#", "control"},
		{"subDir DEL", "v1#delete#h#/s#a\x7f#", "control"},
		{"subDir escape char", "v1#delete#h#/s#\x1b[31m#", "control"},
		{"subDir component 256 bytes", "v1#delete#h#/s#ok/" + long + "#", "longer than 255"},
		{"subDir too long", "v1#delete#h#/s#" + strings.Repeat("abc/", MaxSubDirLen/4) + "x#", "longer than 1024"},
		{"subDir metadata dir", "v1#delete#h#/s#.nfs-csi#", "reserved"},
		{"subDir under metadata dir", "v1#delete#h#/s#.nfs-csi/volumes/x#", "reserved"},
		{"mount option with space", "v1#delete#h#/s#a#vers=4 hard", "space"},
		{"mount option with tab", "v1#delete#h#/s#a#vers=4\thard", "space"},
		{"empty mount option in the middle", "v1#delete#h#/s#a#vers=4,,hard", "empty option"},
		{"trailing comma", "v1#delete#h#/s#a#vers=4,", "empty option"},
		{"only a comma", "v1#delete#h#/s#a#,", "empty option"},
		{"mount option with NUL", "v1#delete#h#/s#a#ro\x00", "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseVolumeID(tt.id)
			if err == nil {
				t.Fatalf("ParseVolumeID(%q) = %#v, want an error", tt.id, v)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseVolumeID(%q) error %q does not mention %q", tt.id, err, tt.want)
			}
			if !reflect.DeepEqual(v, Volume{}) {
				t.Errorf("ParseVolumeID(%q) returned a partial volume %#v with its error", tt.id, v)
			}
		})
	}
}

func TestVolumeValidate(t *testing.T) {
	good := Volume{Server: "h", Share: "/s", SubDir: "a", OnDelete: OnDeleteDelete}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(%#v): %v", good, err)
	}
	bad := map[string]func(v *Volume){
		"comma in option":  func(v *Volume) { v.MountOptions = []string{"a,b"} },
		"empty option":     func(v *Volume) { v.MountOptions = []string{""} },
		"space in option":  func(v *Volume) { v.MountOptions = []string{"a b"} },
		"no policy":        func(v *Volume) { v.OnDelete = "" },
		"bad policy":       func(v *Volume) { v.OnDelete = "shred" },
		"subDir escapes":   func(v *Volume) { v.SubDir = "../x" },
		"share relative":   func(v *Volume) { v.Share = "s" },
		"server unbracket": func(v *Volume) { v.Server = "::1" },
	}
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			v := good
			mutate(&v)
			if err := v.Validate(); err == nil {
				t.Errorf("Validate(%#v) = nil, want an error", v)
			}
		})
	}
}

func TestParseOnDelete(t *testing.T) {
	for _, s := range []string{"delete", "retain", "archive"} {
		p, err := ParseOnDelete(s)
		if err != nil || string(p) != s {
			t.Errorf("ParseOnDelete(%q) = %q, %v", s, p, err)
		}
	}
	for _, s := range []string{"", "Delete", "RETAIN", "recycle", " delete"} {
		if p, err := ParseOnDelete(s); err == nil {
			t.Errorf("ParseOnDelete(%q) = %q, want an error", s, p)
		}
	}
}

func TestVolumeSource(t *testing.T) {
	tests := []struct {
		vol           Volume
		source, share string
	}{
		{Volume{Server: "10.0.0.1", Share: "/srv/nfs", SubDir: "pvc-1"}, "10.0.0.1:/srv/nfs/pvc-1", "10.0.0.1:/srv/nfs"},
		{Volume{Server: "h", Share: "/", SubDir: "a/b"}, "h:/a/b", "h:/"},
		{Volume{Server: "[fd00::1]", Share: "/export", SubDir: "x"}, "[fd00::1]:/export/x", "[fd00::1]:/export"},
		{Volume{Server: "h", Share: "/srv"}, "h:/srv", "h:/srv"},
		{Volume{Server: "h", Share: "/"}, "h:/", "h:/"},
		{Volume{Server: "h", Share: "/s#%", SubDir: "a#b"}, "h:/s#%/a#b", "h:/s#%"},
	}
	for _, tt := range tests {
		if got := tt.vol.Source(); got != tt.source {
			t.Errorf("%#v.Source() = %q, want %q", tt.vol, got, tt.source)
		}
		if got := tt.vol.ShareSource(); got != tt.share {
			t.Errorf("%#v.ShareSource() = %q, want %q", tt.vol, got, tt.share)
		}
	}
}

func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "   ", want: nil},
		{in: ",,", want: nil},
		{in: "vers=4.1", want: []string{"vers=4.1"}},
		{in: "vers=4.1,hard,nconnect=8", want: []string{"vers=4.1", "hard", "nconnect=8"}},
		{in: " vers=3 , nolock ,, ", want: []string{"vers=3", "nolock"}},
		{in: "a b", wantErr: true},
		{in: "vers=3,a\tb", wantErr: true},
		{in: "sec=sys,x\x00y", wantErr: true},
		{in: "ro,\x7f", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseMountOptions(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseMountOptions(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseMountOptions(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidateMountOptions(t *testing.T) {
	tests := []struct {
		opts []string
		ok   bool
	}{
		{nil, true},
		{[]string{"vers=4.2", "hard", "timeo=600", "sec=krb5p", "clientaddr=[fd00::2]"}, true},
		{[]string{""}, false},
		{[]string{"a", ""}, false},
		{[]string{"a,b"}, false},
		{[]string{"a b"}, false},
		{[]string{"a\nb"}, false},
		{[]string{"a\x00"}, false},
		{[]string{"a\x7f"}, false},
	}
	for _, tt := range tests {
		if err := ValidateMountOptions(tt.opts); (err == nil) != tt.ok {
			t.Errorf("ValidateMountOptions(%q) = %v, want ok=%v", tt.opts, err, tt.ok)
		}
	}
}

func TestMergeMountOptions(t *testing.T) {
	tests := []struct {
		lists [][]string
		want  []string
	}{
		{nil, nil},
		{[][]string{nil, {}}, nil},
		{[][]string{{"vers=4.1", "hard"}}, []string{"vers=4.1", "hard"}},
		{[][]string{{"vers=4.1", "hard"}, {"ro", "hard"}}, []string{"vers=4.1", "hard", "ro"}},
		{[][]string{{"a", "a", "b"}, {"b", "c"}, {"c", "a", "d"}}, []string{"a", "b", "c", "d"}},
		// Only exact duplicates are merged; conflicting values stay in order
		// and the last one wins in mount(8).
		{[][]string{{"vers=3"}, {"vers=4.1"}}, []string{"vers=3", "vers=4.1"}},
	}
	for _, tt := range tests {
		got := MergeMountOptions(tt.lists...)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("MergeMountOptions(%q) = %q, want %q", tt.lists, got, tt.want)
		}
	}
	in := []string{"x", "y"}
	out := MergeMountOptions(in)
	out[0] = "changed"
	if in[0] != "x" {
		t.Errorf("MergeMountOptions returned its argument's backing array")
	}
}

// checkVolumeInsideShare is the property FuzzParseVolumeID checks for every
// ID that parses: the volume's directory is strictly inside its share.
func checkVolumeInsideShare(t *testing.T, v Volume) {
	t.Helper()
	const root = "/share-root-sentinel"
	joined := path.Join(root, v.SubDir)
	if v.SubDir == "" {
		if joined != root {
			t.Errorf("empty subDir joins to %q", joined)
		}
	} else if !strings.HasPrefix(joined, root+"/") {
		t.Errorf("subDir %q leaves the share: %q", v.SubDir, joined)
	}
	if v.SubDir != "" && path.Clean(v.SubDir) != v.SubDir {
		t.Errorf("subDir %q is not clean (%q)", v.SubDir, path.Clean(v.SubDir))
	}
	if strings.HasPrefix(v.SubDir, "/") {
		t.Errorf("subDir %q is absolute", v.SubDir)
	}
	if v.SubDir != "" {
		for _, c := range strings.Split(v.SubDir, "/") {
			if c == ".." || c == "." || c == "" {
				t.Errorf("subDir %q has component %q", v.SubDir, c)
			}
			if len(c) > MaxComponentLen {
				t.Errorf("subDir %q has a component longer than %d", v.SubDir, MaxComponentLen)
			}
			if strings.ContainsAny(c, "\x00") {
				t.Errorf("subDir %q contains NUL", v.SubDir)
			}
		}
		if first, _, _ := strings.Cut(v.SubDir, "/"); first == MetadataDirName {
			t.Errorf("subDir %q is under %s", v.SubDir, MetadataDirName)
		}
	}
	if !strings.HasPrefix(v.Share, "/") || path.Clean(v.Share) != v.Share {
		t.Errorf("share %q is not absolute and clean", v.Share)
	}
	for _, c := range strings.Split(v.Share, "/") {
		if c == ".." || c == "." {
			t.Errorf("share %q has component %q", v.Share, c)
		}
	}
}

func FuzzParseVolumeID(f *testing.F) {
	for _, s := range []string{
		"v1#delete#10.0.0.1#/srv/nfs#pvc-1#",
		"v1#retain#[fd00::1]#/#ns/pvc#vers=4.1,hard",
		"v1#archive#h#/s%23x#a%25b/c%23d#opt%23",
		"v1#delete#h#/s##",
		"v1#delete#h#/s#../../etc#",
		"v1#delete#h#/s#a/./b#",
		"v1#delete#h#/s#.nfs-csi/volumes#",
		"v1#delete#h#/s/..#a#",
		"v1#delete#h#/s#a%2#",
		"v1#delete#h#/s#a%2F..%2F..#",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		v, err := ParseVolumeID(id)
		if err != nil {
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("ParseVolumeID(%q) = %#v, which fails Validate: %v", id, v, err)
		}
		again := v.ID()
		if again != id {
			t.Errorf("ID() of ParseVolumeID(%q) = %q; the handle is not canonical", id, again)
		}
		v2, err := ParseVolumeID(again)
		if err != nil {
			t.Fatalf("re-rendered ID %q of %q does not parse: %v", again, id, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip of %q changed the volume: %#v -> %#v", id, v, v2)
		}
		checkVolumeInsideShare(t, v)
	})
}
