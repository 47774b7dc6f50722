import { ConfigError } from "../config/errors";
import { ROOT } from "./cli";
import { costSection } from "./costReport";
import { estateModels } from "./estateDoc";

/** `npm run cost`: what each site of the committed stack files costs a month, the total, and the cheapest fit. */
try {
  console.log(costSection(estateModels(ROOT)));
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(e.message);
  process.exit(1);
}
