"""fangpin (防贫): dynamic monitoring to prevent relapse into poverty, for a county's rural-revitalisation bureau."""
from fangpin import cores

cores.keep_freed_memory()  # before anything imports Polars: its allocator reads its options once, when it loads
