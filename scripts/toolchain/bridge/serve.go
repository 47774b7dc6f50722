// Shared by the docker and hcloud stand-ins: toolchain.sh copies this file into their build
// modules next to their main.go (package main), which keeps only what is provider-specific.
package main

import (
	"context"
	"fmt"
	"os"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/x/muxer"
	"github.com/pulumi/pulumi-terraform-bridge/v3/unstable/metadata"
)

// serveMuxed serves info (P: an SDKv2 + plugin-framework mux, see pf.MuxShimWithPF) as the
// Pulumi provider name at version. info holds the provider's overrides of the bridge
// defaults; every other resource and data source gets the token <name>:index/<camelName>:<PascalName>.
func serveMuxed(ctx context.Context, name, version string, info tfbridge.ProviderInfo) {
	info.Name = name
	info.Version = version
	if info.MetadataInfo == nil {
		info.MetadataInfo = tfbridge.NewProviderMetadata([]byte("{}"))
	}
	if info.Resources == nil {
		info.Resources = map[string]*tfbridge.ResourceInfo{}
	}
	// Pulumi IDs are strings; some resources declare a numeric "id" attribute.
	info.P.ResourcesMap().Range(func(key string, r shim.Resource) bool {
		if id, ok := r.Schema().GetOk("id"); ok && id.Type() != shim.TypeString {
			ri := info.Resources[key]
			if ri == nil {
				ri = &tfbridge.ResourceInfo{}
				info.Resources[key] = ri
			}
			if ri.Fields == nil {
				ri.Fields = map[string]*tfbridge.SchemaInfo{}
			}
			ri.Fields["id"] = &tfbridge.SchemaInfo{Type: "string"}
		}
		return true
	})
	info.MustComputeTokens(tokens.SingleModule(name+"_", "index", tokens.MakeStandard(name)))
	// Like the Pulumi providers: a missing "name" gets <resource name>-<random suffix>.
	info.SetAutonaming(255, "-")

	// A muxed provider needs a table saying which sub-provider serves which token. Pulumi's
	// build precomputes it with tfgen into bridge-metadata.json; it is cheap, so compute it
	// here at start-up instead of running tfgen.
	d, err := info.P.(interface {
		ResolveDispatch(*tfbridge.ProviderInfo) (muxer.DispatchTable, error)
	}).ResolveDispatch(&info)
	if err == nil {
		err = metadata.Set(info.GetMetadata(), "mux", d)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: computing the mux dispatch table: %v\n", name, err)
		os.Exit(1)
	}
	// The schema is only served to `pulumi package get-schema`-like callers; a stub will do.
	pf.MainWithMuxer(ctx, name, info, []byte(`{"name":"`+name+`","version":"`+version+`"}`))
}
