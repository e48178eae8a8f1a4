// apikeyfront: a TLS front for the Temporal dev server that requires an API key, as Temporal
// Cloud does, for tests that prove a client sends its key on the wire.
//
// The dev server has no TLS and no API keys. This front terminates TLS (HTTP/2), checks each
// gRPC call's `authorization: Bearer <key>` header, and either proxies the call to the dev
// server (plain HTTP/2) or answers it with gRPC status UNAUTHENTICATED. Every call is one JSON
// line in --log (method, whether a key was presented, whether it matched), so a test reads
// what the client actually sent.
//
//	apikeyfront --listen 127.0.0.1:PORT --to 127.0.0.1:7233 --cert tls.crt --key tls.key \
//	    --api-key KEY --log calls.jsonl
package main

import (
	"crypto/subtle"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
)

type call struct {
	Method    string `json:"method"`
	Presented bool   `json:"presented"`
	Accepted  bool   `json:"accepted"`
	Agent     string `json:"user_agent"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve TLS on")
	to := flag.String("to", "", "the dev server's plain gRPC address (host:port)")
	cert := flag.String("cert", "", "server certificate (PEM)")
	key := flag.String("key", "", "server private key (PEM)")
	apiKey := flag.String("api-key", "", "the one API key accepted")
	logPath := flag.String("log", "", "JSON lines, one per call")
	flag.Parse()
	if *to == "" || *cert == "" || *key == "" || *apiKey == "" || *logPath == "" {
		log.Fatal("--to, --cert, --key, --api-key and --log are required")
	}
	out, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	record := func(c call) {
		line, _ := json.Marshal(c)
		mu.Lock()
		defer mu.Unlock()
		_, _ = out.Write(append(line, '\n'))
	}

	var upstream http.Protocols
	upstream.SetUnencryptedHTTP2(true) // gRPC without TLS to the dev server
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = *to
			r.Out.Header.Del("Authorization") // the dev server knows nothing of keys
		},
		Transport:     &http.Transport{Protocols: &upstream},
		FlushInterval: -1, // pass each gRPC message on at once
	}
	want := []byte("Bearer " + *apiKey)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		ok := subtle.ConstantTimeCompare([]byte(got), want) == 1
		record(call{Method: r.URL.Path, Presented: strings.HasPrefix(got, "Bearer "),
			Accepted: ok, Agent: r.Header.Get("User-Agent")})
		if !ok {
			// A trailers-only gRPC answer: status 16 UNAUTHENTICATED.
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "16")
			w.Header().Set("Grpc-Message", "apikeyfront: missing or wrong API key")
			w.WriteHeader(http.StatusOK)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	server := &http.Server{Addr: *listen, Handler: handler}
	log.Printf("serving TLS on %s for %s", *listen, *to)
	log.Fatal(server.ListenAndServeTLS(*cert, *key))
}
