package kubeobj

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	objs, err := Decode([]byte("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetKind() != "Namespace" || objs[1].GetNamespace() != "a" {
		t.Errorf("Decode = %d objects %v; want the Namespace and the ConfigMap, empty documents skipped", len(objs), objs)
	}
	if _, err := Decode([]byte("apiVersion: v1\nkind: [")); err == nil || !strings.Contains(err.Error(), "document 1") {
		t.Errorf("Decode of broken YAML: %v; want an error naming the document", err)
	}
}
