//go:build uml

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/example/nfs-csi/pkg/agent"
	"github.com/example/nfs-csi/pkg/agent/agenttest"
)

const mib = 1 << 20

// quotaWriteError is what a write past a project quota fails with: XFS
// answers ENOSPC, ext4 EDQUOT.
var quotaWriteError = map[string]string{"xfs": "No space left on device", "ext4": "Disk quota exceeded"}

// TestAgentEnforcesLimitsOverNFS sets a limit through bin/nfs-csi agent on a
// real XFS and ext4 export with prjquota and checks what NFSv3 and NFSv4.2
// clients of the volume's directory see: the limit as the size, a write
// past it failing, a raised limit without a remount, and the ID kept over a
// restart and released by clear.
func TestAgentEnforcesLimitsOverNFS(t *testing.T) {
	for _, kind := range []string{"xfs", "ext4"} {
		t.Run(kind, func(t *testing.T) {
			q, a, c, ctx := quotaBed(t, kind)

			vol := q.volume(t, "vol-a")
			vol.CapacityBytes = 48 * mib
			st, err := c.Set(ctx, vol)
			if err != nil {
				t.Fatal(err)
			}
			if st.ProjectID != 5000 || st.LimitBytes != 48*mib {
				t.Fatalf("Set = %+v, want project 5000 with a 48 MiB limit", st)
			}
			if id, inherit, err := agent.ProjectOf(filepath.Join(q.dir, "vol-a")); err != nil || id != 5000 || !inherit {
				t.Fatalf("the directory has project %d (inherit %v, %v), want 5000 with inherit", id, inherit, err)
			}
			// A neighbour on the same file system, with its own project.
			nb := q.volume(t, "vol-b")
			nb.CapacityBytes = 16 * mib
			if st, err := c.Set(ctx, nb); err != nil || st.ProjectID != 5001 {
				t.Fatalf("Set of the neighbour = %+v, %v; want project 5001", st, err)
			}

			server := os.Getenv("NFS_SERVER")
			m3 := nfsMount(t, "3", server+":"+q.v3Share+"/vol-a")
			nbMount := nfsMount(t, "4.2", server+":"+q.v4Share+"/vol-b")
			m4 := nfsMount(t, "4.2", server+":"+q.v4Share+"/vol-a")
			whole := nfsMount(t, "3", server+":"+q.v3Share)
			for _, m := range []string{m3, m4} {
				if got := statfsTotal(t, m); got != 48*mib {
					t.Errorf("statfs of the volume's mount %s = %d bytes, want the 48 MiB limit", m, got)
				}
			}
			if got := statfsTotal(t, whole); got <= 100*mib {
				t.Errorf("statfs of the whole export = %d bytes, want the whole file system", got)
			}

			out, err := writeAsNobody(filepath.Join(m3, "big"), 64)
			if err == nil || !strings.Contains(out, quotaWriteError[kind]) {
				t.Fatalf("writing 64 MiB into a 48 MiB volume over NFSv3: %v\n%s\nwant %q", err, out, quotaWriteError[kind])
			}
			if out, err := writeAsNobody(filepath.Join(nbMount, "fits"), 8); err != nil {
				t.Fatalf("the neighbour could not write 8 MiB of its 16 after vol-a filled up: %v\n%s", err, out)
			}

			vol.CapacityBytes = 96 * mib
			if st, err := c.Set(ctx, vol); err != nil || st.ProjectID != 5000 || st.LimitBytes != 96*mib {
				t.Fatalf("raising the limit: %+v, %v; want project 5000 at 96 MiB", st, err)
			}
			for _, m := range []string{m3, m4} {
				if got := statfsTotal(t, m); got != 96*mib {
					t.Errorf("statfs of %s after the raise = %d bytes, want 96 MiB without a remount", m, got)
				}
			}
			if out, err := writeAsNobody(filepath.Join(m4, "more"), 24); err != nil {
				t.Fatalf("writing 24 MiB after the raise over NFSv4.2: %v\n%s", err, out)
			}
			vol.CapacityBytes = 0
			if st, err := c.Get(ctx, vol); err != nil || st.UsedBytes < 60*mib || st.LimitBytes != 96*mib {
				t.Errorf("Get = %+v, %v; want about 72 MiB used of 96", st, err)
			}

			// The assignment survives a restart of the agent.
			a.stop(t)
			if _, err := c.Get(ctx, vol); !agent.IsUnreachable(err) || !strings.Contains(err.Error(), a.addr) {
				t.Errorf("Get from a stopped agent = %v, want an unreachable error naming %s", err, a.addr)
			}
			a.start(t)
			nb.CapacityBytes = 20 * mib
			if st, err := c.Set(ctx, nb); err != nil || st.ProjectID != 5001 {
				t.Errorf("Set of the neighbour after a restart = %+v, %v; want its project 5001 again", st, err)
			}

			if err := c.Clear(ctx, vol); err != nil {
				t.Fatal(err)
			}
			if id, _, err := agent.ProjectOf(filepath.Join(q.dir, "vol-a")); err != nil || id != 0 {
				t.Errorf("after clear the directory has project %d (%v), want none", id, err)
			}
			if qt, err := agent.QuotaOf(q.dir, 5000); err != nil || qt.LimitBytes != 0 {
				t.Errorf("after clear project 5000 has %+v (%v), want no limit", qt, err)
			}
			if _, err := os.Lstat(filepath.Join(q.dir, agent.ProjectDir, "id-5000")); !os.IsNotExist(err) {
				t.Errorf("after clear the assignment of 5000 is still there (%v)", err)
			}
		})
	}
}

// TestAgentRefusalsChangeNothing sends the agent what it must refuse, on a
// real XFS and ext4 export: a client certificate of another CA, a share
// that is not a root, a path through a symlink, a directory without a
// record, and one whose project ID an admin set outside the range. Each is
// refused, and the tree, the project IDs and the limits stay as they were.
func TestAgentRefusalsChangeNothing(t *testing.T) {
	for _, kind := range []string{"xfs", "ext4"} {
		t.Run(kind, func(t *testing.T) {
			q, a, c, ctx := quotaBed(t, kind)

			good := q.volume(t, "vol-a")
			good.CapacityBytes = 8 * mib
			if _, err := c.Set(ctx, good); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(q.dir, "plain"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("plain", filepath.Join(q.dir, "escape")); err != nil {
				t.Fatal(err)
			}
			q.record(t, "escape", "vol-escape")
			if err := os.Mkdir(filepath.Join(q.dir, "norecord"), 0o755); err != nil {
				t.Fatal(err)
			}
			admin := q.volume(t, "admin")
			run(t, "chattr", "-p", "42", "+P", filepath.Join(q.dir, "admin"))

			snapshot := func() string {
				var b strings.Builder
				for _, l := range treeSnapshot(t, q.dir) {
					b.WriteString(l + "\n")
				}
				for _, d := range []string{"vol-a", "plain", "norecord", "admin"} {
					id, inherit, err := agent.ProjectOf(filepath.Join(q.dir, d))
					fmt.Fprintf(&b, "%s project %d inherit %v %v\n", d, id, inherit, err)
				}
				for _, id := range []uint32{42, 5000, 5001} {
					qt, err := agent.QuotaOf(q.dir, id)
					fmt.Fprintf(&b, "project %d limit %d %v\n", id, qt.LimitBytes, err)
				}
				return b.String()
			}
			other, err := agenttest.NewPKI("another-ca")
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name string
				c    *agent.Client
				req  agent.Request
				want agent.Code // "" for a refused handshake
			}{
				{"certificate of another CA", a.client(t, other), good, ""},
				{"share not a root", c, agent.Request{Share: exportDir(), SubDir: "q" + kind + "/vol-a", VolumeID: good.VolumeID}, agent.CodePermissionDenied},
				{"through a symlink", c, agent.Request{Share: q.v3Share, SubDir: "escape", VolumeID: "vol-escape"}, agent.CodePermissionDenied},
				{"no record", c, agent.Request{Share: q.v4Share, SubDir: "norecord", VolumeID: "vol-norecord"}, agent.CodeFailedPrecondition},
				{"record of another volume", c, agent.Request{Share: q.v3Share, SubDir: "vol-a", VolumeID: "vol-other"}, agent.CodeFailedPrecondition},
				{"project ID outside the range", c, admin, agent.CodeFailedPrecondition},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before := snapshot()
					req := tc.req
					req.CapacityBytes = 1 * mib
					_, err := tc.c.Set(ctx, req)
					if tc.want == "" && !agent.IsUnreachable(err) || tc.want != "" && agentCode(err) != tc.want {
						t.Fatalf("Set = %v, want %q", err, tc.want)
					}
					req.CapacityBytes = 0
					if err := tc.c.Clear(ctx, req); tc.want == "" && !agent.IsUnreachable(err) || tc.want != "" && agentCode(err) != tc.want {
						t.Errorf("Clear = %v, want %q", err, tc.want)
					}
					if after := snapshot(); after != before {
						t.Errorf("the refusal changed the server:\n%s\nto\n%s", before, after)
					}
				})
			}
		})
	}
}
