// Stand-in for pulumi-resource-random: terraform-provider-random through the bridge.
// Lives under the upstream module's path so that it may import internal/provider.
package main

import (
	"context"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/terraform-providers/terraform-provider-random/internal/provider"
)

var version = "0.0.1" // set with -ldflags to the npm package's version

func main() {
	info := tfbridge.ProviderInfo{
		P:            pf.ShimProvider(provider.New()),
		Name:         "random",
		Version:      version,
		MetadataInfo: tfbridge.NewProviderMetadata([]byte("{}")),
	}
	// random_password -> random:index/randomPassword:RandomPassword, as in @pulumi/random.
	info.MustComputeTokens(tokens.SingleModule("random_", "index", func(module, name string) (string, error) {
		return tokens.MakeStandard("random")(module, "Random"+name)
	}))
	// The schema is only served to `pulumi package get-schema`-like callers; a stub will do.
	pf.Main(context.Background(), "random", info, pf.ProviderMetadata{
		PackageSchema: []byte(`{"name":"random","version":"` + version + `"}`),
	})
}
