// cnidriver runs one CNI operation through libcni, the library container runtimes (containerd, CRI-O,
// Podman) use to call CNI plugins, so tests see exactly what a runtime sends: the plugin chain, the result
// cache, and GC's DELs of cached attachments followed by the GC call with the injected valid attachments.
//
// Usage: cnidriver < request.json, where the request is
//
//	{"command": "ADD"|"DEL"|"CHECK"|"GC"|"STATUS"|"LOAD", "conflist": {...}, "cniPath": ["/dir"], "cacheDir": "/dir",
//	 "containerID": "...", "netns": "/var/run/netns/x", "ifName": "eth0", "args": [["K8S_POD_NAME", "p"]],
//	 "validAttachments": [{"containerID": "...", "ifname": "eth0"}]}
//
// A GC request without "validAttachments" passes no GCArgs at all (what a runtime that has no list does). LOAD
// only parses "conflist" (a conflist, or a single plugin configuration as Multus also accepts) the way libcni
// does and answers what it read: {"form", "name", "cniVersion", "plugins": [{"type", "config"}]}. The answer
// on stdout is {"result": ...} (exit 0) or {"error": "...", "code": N} (exit 1).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
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

type loadedPlugin struct {
	Type   string          `json:"type"`
	Config json.RawMessage `json:"config"`
}

type loaded struct {
	Form       string         `json:"form"`
	Name       string         `json:"name"`
	CNIVersion string         `json:"cniVersion"`
	Plugins    []loadedPlugin `json:"plugins"`
}

func load(raw json.RawMessage) (interface{}, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, fmt.Errorf("conflist: %w", err)
	}
	form := "conflist"
	var list *libcni.NetworkConfigList
	var err error
	if _, ok := keys["plugins"]; ok {
		list, err = libcni.ConfListFromBytes(raw)
	} else {
		form = "conf"
		var conf *libcni.PluginConfig
		if conf, err = libcni.ConfFromBytes(raw); err == nil {
			list, err = libcni.ConfListFromConf(conf)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("conflist: %w", err)
	}
	if !slices.Contains(version.All.SupportedVersions(), list.CNIVersion) {
		return nil, fmt.Errorf("conflist: cniVersion %q is none of the versions libcni speaks %v",
			list.CNIVersion, version.All.SupportedVersions())
	}
	out := loaded{Form: form, Name: list.Name, CNIVersion: list.CNIVersion, Plugins: []loadedPlugin{}}
	for _, p := range list.Plugins {
		out.Plugins = append(out.Plugins, loadedPlugin{Type: p.Network.Type, Config: p.Bytes})
	}
	return out, nil
}

func run(req request) (interface{}, error) {
	if req.Command == "LOAD" {
		return load(req.Conflist)
	}
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
