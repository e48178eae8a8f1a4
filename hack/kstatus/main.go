// kstatus prints how Flux (and kstatus-based tools) read the health of Kubernetes objects:
// for each object given as JSON or YAML on stdin (one object, a List, or ---separated
// documents), one JSON line {"kind","name","status","message"} computed by
// sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, the library Flux's health checks use.
// Built by hack/build-tools.sh; used by tests/unit/test_gitops_health.py.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(os.Stdin), 4096)
	out := json.NewEncoder(os.Stdout)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			fmt.Fprintln(os.Stderr, "kstatus: decode:", err)
			os.Exit(2)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		// UnmarshalJSON keeps integers int64, as the API machinery (and kstatus) expect.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: object:", err)
			os.Exit(2)
		}
		items := []unstructured.Unstructured{*u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				fmt.Fprintln(os.Stderr, "kstatus: list:", err)
				os.Exit(2)
			}
			items = list.Items
		}
		for i := range items {
			res, err := status.Compute(&items[i])
			if err != nil {
				fmt.Fprintln(os.Stderr, "kstatus: compute:", err)
				os.Exit(1)
			}
			_ = out.Encode(result{items[i].GetKind(), items[i].GetName(), string(res.Status), res.Message})
		}
	}
}
