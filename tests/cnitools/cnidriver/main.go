// cnidriver runs one CNI operation through libcni, the library container runtimes (containerd, CRI-O,
// Podman) use to call CNI plugins, so tests see exactly what a runtime sends: the plugin chain, the result
// cache, and GC's DELs of cached attachments followed by the GC call with the injected valid attachments.
//
// Usage: cnidriver < request.json, where the request is
//
//	{"command": "ADD"|"DEL"|"CHECK"|"GC"|"STATUS", "conflist": {...}, "cniPath": ["/dir"], "cacheDir": "/dir",
//	 "containerID": "...", "netns": "/var/run/netns/x", "ifName": "eth0", "args": [["K8S_POD_NAME", "p"]],
//	 "validAttachments": [{"containerID": "...", "ifname": "eth0"}]}
//
// A GC request without "validAttachments" passes no GCArgs at all (what a runtime that has no list does). The
// answer on stdout is {"result": ...} (exit 0) or {"error": "...", "code": N} (exit 1).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

type request struct {
	Command          string                `json:"command"`
	Conflist         json.RawMessage       `json:"conflist"`
	CNIPath          []string              `json:"cniPath"`
	CacheDir         string                `json:"cacheDir"`
	ContainerID      string                `json:"containerID"`
	Netns            string                `json:"netns"`
	IfName           string                `json:"ifName"`
	Args             [][2]string           `json:"args"`
	ValidAttachments *[]types.GCAttachment `json:"validAttachments"`
}

func run(req request) (interface{}, error) {
	list, err := libcni.ConfListFromBytes(req.Conflist)
	if err != nil {
		return nil, fmt.Errorf("conflist: %w", err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(req.CNIPath, req.CacheDir, nil)
	rt := &libcni.RuntimeConf{
		ContainerID: req.ContainerID,
		NetNS:       req.Netns,
		IfName:      req.IfName,
		Args:        req.Args,
	}
	ctx := context.Background()
	switch req.Command {
	case "ADD":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return nil, err
		}
		return res, nil
	case "DEL":
		return nil, cni.DelNetworkList(ctx, list, rt)
	case "CHECK":
		return nil, cni.CheckNetworkList(ctx, list, rt)
	case "STATUS":
		return nil, cni.GetStatusNetworkList(ctx, list)
	case "GC":
		var args *libcni.GCArgs
		if req.ValidAttachments != nil {
			args = &libcni.GCArgs{ValidAttachments: *req.ValidAttachments}
		}
		return nil, cni.GCNetworkList(ctx, list, args)
	}
	return nil, fmt.Errorf("unknown command %q", req.Command)
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintf(os.Stderr, "cnidriver: bad request on stdin: %v\n", err)
		os.Exit(2)
	}
	res, err := run(req)
	out := json.NewEncoder(os.Stdout)
	if err != nil {
		answer := map[string]interface{}{"error": err.Error()}
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			answer["code"] = cniErr.Code
		}
		_ = out.Encode(answer)
		os.Exit(1)
	}
	_ = out.Encode(map[string]interface{}{"result": res})
}
