def test_signed_in_concierge_sees_the_home_dashboard(login_as):
    staff = login_as("concierge")
    page = staff.page("/")
    assert "Waiting on staff" in page.get_text()
