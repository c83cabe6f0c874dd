import subprocess
import sys

from tests.conftest import ROOT


def test_check_and_migrate_plan_never_import_torch():
    code = (
        "import sys, django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings'); django.setup();"
        "from django.core.management import call_command; call_command('check');"
        "import gallery.admin, gallery.services, gallery.ingest, search.views, search.selectors;"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
