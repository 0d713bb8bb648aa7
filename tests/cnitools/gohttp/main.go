// gohttp is Go's own net/http on a unix socket, both ends, for checking that our agent and our plugin speak
// HTTP/1.1 the way Go does (upstream Spiderpool's agent and plugin are Go programs).
//
//	gohttp serve SOCKET     net/http server; answers every request 200 with a JSON echo of method, path,
//	                        Host and body; prints "listening" once it accepts connections
//	gohttp call SOCKET METHOD PATH [BODY]
//	                        net/http client set up as upstream's plugin sets up its client (keep-alives off,
//	                        dialing the socket, the socket path as URL host); prints {"status", "body"}
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

func serve(socket string) error {
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	fmt.Println("listening")
	return http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"method": r.Method,
			"path":   r.URL.RequestURI(),
			"host":   r.Host,
			"body":   string(body),
		})
	}))
}

func call(socket, method, path, body string) error {
	transport := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}
	u := &url.URL{Scheme: "http", Host: socket, Path: path}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u.Path, u.RawQuery = path[:i], path[i+1:]
	}
	req := &http.Request{Method: method, URL: u, Host: u.Host, Header: http.Header{}}
	if body != "" {
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]interface{}{"status": res.StatusCode, "body": string(data)})
}

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "serve":
		err = serve(os.Args[2])
	case len(os.Args) >= 5 && len(os.Args) <= 6 && os.Args[1] == "call":
		body := ""
		if len(os.Args) == 6 {
			body = os.Args[5]
		}
		err = call(os.Args[2], os.Args[3], os.Args[4], body)
	default:
		err = fmt.Errorf("usage: gohttp serve SOCKET | gohttp call SOCKET METHOD PATH [BODY]")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gohttp:", err)
		os.Exit(1)
	}
}
