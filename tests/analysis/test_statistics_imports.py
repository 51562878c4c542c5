import subprocess
import sys


def test_statistics_modules_import_without_the_numerical_stack():
    # start-up time matters: numpy, pandas, scipy, statsmodels and lifelines load on first use
    code = (
        "import sys\n"
        "import analysis.binary, analysis.descriptive, analysis.effect_size, analysis.multiplicity\n"
        "import analysis.subgroups, analysis.survival\n"
        "heavy = {'numpy', 'pandas', 'scipy', 'statsmodels', 'lifelines', 'pingouin'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
